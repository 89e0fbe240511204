"""Training recipes of the lung-segmentation U-Net (`python -m experiments.unet --recipe=report|strong`).

report: faithful to the report's code: inputs / 255, BCE, Adam 1e-3 constant, batch 4, 25 epochs, no
  augmentation, no batch norm, the last epoch kept; 0.9551 mean validation F1 on one fold of real JSRT
  radiographs (12 cases, H200).
strong (default): each image standardised by its own mean and std, batch norm after every conv, BCE +
  soft Dice, on-device augmentation moving the masks with the images (+-5 deg, +-3 % shift, +-8 % scale,
  brightness, contrast), AdamW 1e-3 one-cycle with weight decay 1e-4, batch 4, 25 epochs, the best
  validation epoch kept. `python -m experiments.unet --dataset=folder:LUNGS_DIR
  --test-fraction=0` on the 2-core CPU: validation per-image F1 mean 0.9801, min 0.9696 (12 cases,
  32-34 minutes); 3 folds x 2 seeds on the H200: 0.9798 mean, 0.9362 min (72 images).
Every run behind these choices, with its command, machine and date: docs/recipe_notes.md.
"""

from __future__ import annotations

import dataclasses

from jaxadl import AugmentConfig, OptimConfig, Segmentation

# Augmentation for radiographs: small pose changes (the lungs stay upright), photometric jitter.
ROTATE_DEG = 5.0
TRANSLATE_FRACTION = 0.03  # of the image side
SCALE = 0.08
BRIGHTNESS = 0.1
CONTRAST = 0.2


def augmentation(
    image_size: int,
    rotate: float = ROTATE_DEG,
    gamma: float = 0.0,
    shading: float = 0.0,
    *,
    aspect: float = 0.0,
    elastic: float = 0.0,
) -> AugmentConfig:
    """The radiograph augmentation at this image size (shifts scale with the image; `elastic` is a
    fraction of the image side, as the shifts are)."""
    return AugmentConfig(
        rotate_deg=rotate,
        gamma=gamma,
        shading=shading,
        aspect=aspect,
        elastic=elastic * image_size,
        translate_px=TRANSLATE_FRACTION * image_size,
        scale=SCALE,
        brightness=BRIGHTNESS,
        contrast=CONTRAST,
    )


@dataclasses.dataclass(frozen=True)
class UNetRecipe:
    """The training values that the flags left unset take; checked by the library types they build."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str
    dice_weight: float
    augment: bool
    normalize: bool
    image_norm: bool
    equalize: bool
    batch_norm: bool
    select: str
    depth: int  # pooling levels of the U-Net

    def optim(self) -> OptimConfig:
        """Adam(W) with this recipe's peak rate, schedule and weight decay."""
        return OptimConfig("adam", self.lr, weight_decay=self.weight_decay, schedule=self.schedule)

    def task(self, mean: tuple[float, ...], std: tuple[float, ...]) -> Segmentation:
        """The segmentation task: the training set's statistics when `normalize`, else / 255."""
        return Segmentation(
            mean=mean if self.normalize else (0.0,),
            std=std if self.normalize else (1.0,),
            dice_weight=self.dice_weight,
            image_norm=self.image_norm,
            equalize=self.equalize,
        )


REPORT = UNetRecipe(
    epochs=25,
    batch_size=4,
    lr=1e-3,
    weight_decay=0.0,
    schedule="constant",
    dice_weight=0.0,
    augment=False,
    normalize=False,
    image_norm=False,
    equalize=False,
    batch_norm=False,
    select="last",
    depth=4,
)
STRONG = dataclasses.replace(
    REPORT,
    weight_decay=1e-4,
    schedule="onecycle",
    dice_weight=1.0,
    augment=True,
    normalize=True,
    image_norm=True,
    batch_norm=True,
    select="best",
    depth=5,
)
RECIPES: dict[str, UNetRecipe] = {"report": REPORT, "strong": STRONG}

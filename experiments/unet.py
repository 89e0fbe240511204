"""Lung-segmentation U-Net experiments (report section 2): `python -m experiments.unet --help`.

Segments the lung field in chest radiographs (JSRT + SCR masks: 112 train / 12 val / 123 test at
256x256x1) and reports per-image F1 on the test images: mean, std and min (table 2.1), the training and
validation histories (figures 19-24) and the hardest test image with its predicted mask (figures 25-30).

Examples:
  python -m experiments.unet --dataset=synthetic --out=runs/unet-demo        # offline, synthetic radiographs
  python -m experiments.unet --data-dir=~/data/jsrt                           # one baseline trial on JSRT
  python -m experiments.unet --grid                                           # table 2.1: baseline, nearest, ELU x2
  python -m experiments.unet --grid --recipe=report                           # the same grid, the report's recipe
  python -m experiments.unet --upsample=transpose --batch-norm --trials=3     # another variant, 3 seeds
  python -m experiments.unet --dataset=folder:~/data/lungs --image-size=128   # PATH/images/*, PATH/masks/*
  python -m experiments.unet --dataset=synthetic --image-size=64 --width=8 --epochs=5 --out=runs/quick
  python -m experiments.unet --grid --resume                                  # continue an interrupted grid
  python -m experiments.unet --eval-only --from-run=runs/unet                 # re-evaluate a finished run
  python -m experiments.unet --dataset=folder:~/data/lungs --cv-folds=10 --cv-fold=3   # fold 3 of 10 validates

JSRT is read from --data-dir, else $JAXADL_JSRT_DIR (the .IMG radiographs and the SCR GIF masks in
'left lung' / 'right lung' folders, searched recursively); it is prepared once into --cache-dir. Its
validation cases are the report's 12 unless --val-fraction (0: train on all 124) or --split-seed asks
for another draw from the 124.
A folder dataset holds PATH/images/<name>.<ext> and PATH/masks/<name>.<ext> (binary {0,1} or {0,255};
a mask may have another size than its image, not another aspect ratio), split by --test-fraction and
--val-fraction with --split-seed; or a fixed split PATH/train/{images,masks}, PATH/test/{images,masks}
and optionally PATH/val/{images,masks}, used as given (without val/, --val-fraction of train validates).
--dataset=npz --data-dir=FILE.npz reads arrays saved by jaxadl.data.arrays.save_npz (no TFDS needed).

Recipes (any flag overrides the recipe's value):
  report  faithful to the report's code: inputs / 255, BCE, Adam 1e-3 constant, batch 4, 25 epochs,
          no augmentation, no batch norm, last epoch kept
  strong  (default) each image standardised by its own mean and std, batch norm after every conv,
          BCE + soft Dice (weight 1), on-device augmentation moving the masks with the images (+-5 deg,
          +-3 % shift, +-8 % scale, brightness, contrast), AdamW 1e-3 one-cycle with weight decay 1e-4
          on kernels, batch 4, 25 epochs, epoch with the best validation F1 kept

How the strong recipe was chosen, with each run's command and figure: docs/recipe_notes.md
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from experiments.cli import RunFolderFlags, check_cv_flags, check_seed_flags, flag_of, opt, parse, run_cli
from experiments.configs.unet import RECIPES, ROTATE_DEG, UNetRecipe, augmentation

UPSAMPLE = ("bilinear", "nearest", "transpose")
VAL_FRACTION = 0.1  # --val-fraction's default; on JSRT it keeps the report's 12 validation cases
ACTIVATION = ("relu", "elu")

# The report's comparison (table 2.1): name, upsampling, activation; 2 trials each.
GRID = (
    ("baseline", "bilinear", "relu"),
    ("nearest", "nearest", "relu"),
    ("ELU", "bilinear", "elu"),
)
GRID_TRIALS = 2


@dataclasses.dataclass(frozen=True)
class UNetConfig(RunFolderFlags):
    """Options of the U-Net experiment; None means "take the recipe's value" (experiments/configs/unet.py)."""

    dataset: str = opt(
        "jsrt",
        "training data: jsrt, synthetic (offline radiographs), folder:PATH, or npz (arrays in one file)",
    )
    data_dir: str | None = opt(
        None,
        "JSRT: folder with the .IMG files and SCR masks (else $JAXADL_JSRT_DIR); npz: the .npz file",
        shown="none",
    )
    cache_dir: str | None = opt(
        None, "where prepared datasets are cached", shown="$JAXADL_DATA_DIR or ~/.cache/jaxadl"
    )
    image_size: int = opt(256, "input side length in pixels; divisible by 2**depth (the report uses 256)")
    val_fraction: float = opt(
        VAL_FRACTION,
        "folder, npz: share of the training cases held out for validation when there is no val split; "
        "JSRT: another value than 0.1 draws it again from the report's 124 training cases instead of the "
        "report's 12 (0: train on all 124, a final fit), as does --split-seed other than 0",
    )
    test_fraction: float = opt(0.5, "folder: share of all cases held out for testing")
    synthetic_train: int = opt(112, "synthetic: training images")
    synthetic_val: int = opt(12, "synthetic: validation images")
    synthetic_test: int = opt(123, "synthetic: test images")
    recipe: str = opt("strong", "training recipe: faithful to the report, or the strong one", tuple(RECIPES))
    grid: bool = opt(
        False,
        "run the report's table 2.1: baseline (bilinear + ReLU), nearest, ELU, 2 trials each "
        "(--upsample and --activation are then set per variant)",
    )
    upsample: str = opt("bilinear", "decoder upsampling (single-variant runs)", UPSAMPLE)
    activation: str = opt("relu", "activation after each conv (single-variant runs)", ACTIVATION)
    batch_norm: bool | None = opt(None, "BatchNorm after each conv")
    depth: int | None = opt(None, "pooling levels of the U-Net", shown="5; 4 with --recipe=report")
    width: int = opt(16, "features of the first level (doubling per level)")
    trials: int | None = opt(None, "trials per variant", shown="1, or 2 with --grid")
    epochs: int | None = opt(None, "training epochs")
    batch_size: int | None = opt(None, "training batch size")
    eval_batch_size: int = opt(16, "images per evaluation batch (memory only; results do not change)")
    lr: float | None = opt(None, "peak learning rate")
    weight_decay: float | None = opt(None, "decoupled weight decay on kernels")
    schedule: str | None = opt(None, "learning-rate schedule", ("constant", "onecycle", "cosine"))
    dice_weight: float | None = opt(None, "loss = BCE + this x soft Dice loss (0: BCE only)")
    augment: bool | None = opt(None, "on-device random pose + brightness/contrast (masks move along)")
    normalize: bool | None = opt(None, "input mean/std normalisation from the training set (else / 255)")
    image_norm: bool | None = opt(
        None, "standardise each image by its own mean and std (overrides --normalize)"
    )
    equalize: bool | None = opt(None, "equalise each image's histogram before the normalisation")
    rotate_deg: float = opt(ROTATE_DEG, "augmentation: largest rotation in degrees")
    gamma: float = opt(0.0, "augmentation: gamma exponent drawn from exp([-G, G]) (0: off)")
    shading: float = opt(0.0, "augmentation: add a smooth field drawn in [-S, S] (uneven density; 0: off)")
    aspect: float = opt(
        0.0,
        "augmentation: stretch the width alone by a factor in [1 - A, 1 + A] (chest and heart width; 0: off)",
    )
    elastic: float = opt(
        0.0,
        "augmentation: smooth elastic warp of image and mask, up to E x the image side per pixel (0: off)",
    )
    select: str | None = opt(None, "keep the last epoch or the best on validation F1", ("last", "best"))
    val_every: int = opt(
        1, "validate after every N-th epoch and the last (--select=best chooses among those); saves time"
    )
    ema: float = opt(0.0, "decay of the weight average that is evaluated (0 = off; not measured on JSRT)")
    focus: float = opt(
        0.0,
        "weigh each image's loss by its loss to the power P within the batch: the worst count more (0: the mean)",
    )
    tta: bool = opt(False, "evaluate on the mean of each image's and its four 1-pixel shifts' logits")
    seed: int = opt(0, "random seed of trial 1 (trial i uses seed + i - 1)")
    split_seed: int = opt(
        0,
        "seed of the folder split, JSRT's validation draw (not 0: drawn again instead of the report's 12), "
        "the cross-validation folds and the synthetic images; --seed leaves them fixed",
    )
    cv_folds: int = opt(
        0,
        "cross-validation: pool the train and val cases and cut them into N folds (0: off; the test split stays)",
    )
    cv_fold: int = opt(0, "cross-validation: the fold that validates, 0..N-1 (with --cv-folds)")

    def __post_init__(self) -> None:
        """Checks the CLI's own options; the training values are checked by the library types they build."""
        super().__post_init__()
        self.dataset_kind()  # validates the spec
        check_seed_flags(self.seed, self.split_seed)
        for name in ("trials", "width", "depth", "image_size", "eval_batch_size", "val_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{flag_of(name)} must be >= 1, got {value}")
        depth = self.resolved().depth
        factor = 2**depth
        if self.image_size % factor:
            raise ValueError(
                f"--image-size {self.image_size} is not divisible by 2**depth = {factor} "
                f"(--depth {depth}); try --image-size={max(factor, self.image_size // factor * factor)}"
            )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{flag_of(name)} must be in [0, 1), got {value}")
        if self.synthetic_train < 1:
            raise ValueError(f"--synthetic-train must be >= 1, got {self.synthetic_train}")
        for name in ("synthetic_val", "synthetic_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag_of(name)} must be >= 0, got {getattr(self, name)}")
        if self.synthetic_val + self.synthetic_test < 1:
            raise ValueError("--synthetic-val and --synthetic-test are both 0: nothing to evaluate on")
        if self.dataset == "npz" and not self.data_dir:
            raise ValueError("--dataset=npz needs --data-dir=FILE.npz")
        check_cv_flags(self.cv_folds, self.cv_fold)
        self.train_config(self.resolved(), has_val=True)  # checked before any data is read
        self.resolved().task((0.0,), (1.0,))

    def unused(self) -> list[tuple[str, str]]:
        """The flags this run would not use, with why: refused when given (experiments.cli.refuse_unused)."""
        kind = self.dataset_kind()[0]
        out = []
        if kind == "synthetic":
            out.append(("val_fraction", "with --dataset=synthetic (--synthetic-val sets its validation)"))
        elif self.cv_folds:
            out.append(("val_fraction", "with --cv-folds (fold --cv-fold validates)"))
        if kind != "folder":
            out.append(("test_fraction", f"with --dataset={self.dataset} (its test split is fixed)"))
        if kind != "synthetic":
            out += [
                (n, f"with --dataset={self.dataset}")
                for n in ("synthetic_train", "synthetic_val", "synthetic_test")
            ]
        return out

    def dataset_kind(self) -> tuple[str, str | None]:
        """("jsrt" | "synthetic" | "folder", the folder's path or None); raises ValueError on a bad spec."""
        if self.dataset in ("jsrt", "synthetic", "npz"):
            return self.dataset, None
        if self.dataset.startswith("folder:"):
            path = self.dataset[len("folder:") :]
            if not path:
                raise ValueError("--dataset=folder:PATH needs a path, e.g. --dataset=folder:~/data/lungs")
            return "folder", path
        raise ValueError(
            f"--dataset {self.dataset!r} is not one of jsrt, synthetic, npz, folder:PATH "
            "(e.g. --dataset=folder:~/data/lungs)"
        )

    def data_paths(self) -> list[tuple[str, str]]:
        """(flag, path) of each data folder or file the flags name: a sweep checks them before any run starts."""
        kind, folder = self.dataset_kind()
        named = [("--data-dir", self.data_dir)] if self.data_dir else []
        return named + ([("--dataset=folder:", folder)] if kind == "folder" and folder else [])

    def resolved(self) -> UNetRecipe:
        """The recipe's values, overridden by the flags given."""
        recipe = RECIPES[self.recipe]
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(recipe)}
        return dataclasses.replace(recipe, **{k: v for k, v in given.items() if v is not None})

    def train_config(self, r: UNetRecipe, has_val: bool):
        """The training loop's settings from the recipe's values and this run's options."""
        from jaxadl import TrainConfig

        return TrainConfig(
            epochs=r.epochs,
            batch_size=r.batch_size,
            eval_batch_size=self.eval_batch_size,
            seed=self.seed,
            optim=r.optim(),
            augment=augmentation(
                self.image_size,
                self.rotate_deg,
                self.gamma,
                self.shading,
                aspect=self.aspect,
                elastic=self.elastic,
            )
            if r.augment
            else None,
            select=r.select if has_val else "last",
            val_every=self.val_every,
            ema=self.ema,
            tta=self.tta,
            focus=self.focus,
        )


def load_data(cfg: UNetConfig):
    """The dataset named by the config (JSRT and folders are prepared once and cached), with the validation
    fold of --cv-folds when given."""
    from jaxadl.data.base import cross_val_fold

    data = _load_source(cfg)
    return cross_val_fold(data, cfg.cv_folds, cfg.cv_fold, cfg.split_seed) if cfg.cv_folds else data


def _load_source(cfg: UNetConfig):
    """The dataset as its source splits it."""
    from jaxadl.data.base import hold_out_val, redraw_val

    kind, path = cfg.dataset_kind()
    if kind == "npz":  # no TFDS needed: a prepared split moved to another machine
        from jaxadl.data.arrays import load_npz

        return hold_out_val(load_npz(cfg.data_dir), cfg.val_fraction, cfg.split_seed)
    from jaxadl.data import lungs

    if kind == "synthetic":
        return lungs.synthetic_lungs(
            cfg.synthetic_train,
            cfg.synthetic_val,
            cfg.synthetic_test,
            image_size=cfg.image_size,
            seed=cfg.split_seed,
        )
    if kind == "folder":
        return lungs.load_lung_folder(
            path,
            image_size=cfg.image_size,
            val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction,
            seed=cfg.split_seed,
            cache_dir=cfg.cache_dir,
        )
    data = lungs.load_jsrt(cfg.data_dir, image_size=cfg.image_size, cache_dir=cfg.cache_dir)
    if cfg.cv_folds or (cfg.val_fraction == VAL_FRACTION and cfg.split_seed == 0):
        return data  # the report's 12 (the folds pool them with the 112 anyway)
    return redraw_val(data, cfg.val_fraction, cfg.split_seed)


def gray_stats(images) -> tuple[tuple[float], tuple[float]]:
    """Mean and std of uint8 single-channel images, in [0, 1] units."""
    x = images.astype("float64") / 255.0
    return (float(x.mean()),), (max(float(x.std()), 1e-3),)


def variant_name(upsample: str, activation: str, batch_norm: bool, recipe_batch_norm: bool = False) -> str:
    """Row label: "baseline" for bilinear + ReLU, else the modifications, e.g. "nearest + ELU"; batch norm
    is named only where it differs from the recipe's ("+ batch norm", "no batch norm")."""
    parts = [] if upsample == "bilinear" else [upsample]
    parts += [] if activation == "relu" else [activation.upper()]
    if batch_norm != recipe_batch_norm:
        parts += ["batch norm"] if batch_norm else ["no batch norm"]
    return " + ".join(parts) if parts else "baseline"


def build_variants(cfg: UNetConfig, data):
    """The variants to run: the report's grid or the single one the flags describe."""
    from jaxadl import UNet
    from jaxadl.experiment import Variant

    r = cfg.resolved()
    bn, recipe_bn = r.batch_norm, RECIPES[cfg.recipe].batch_norm
    if cfg.grid:  # the report's row names, with a batch-norm change from the recipe appended
        suffix = "" if bn == recipe_bn else (" + batch norm" if bn else " + no batch norm")
        specs = [(f"{name}{suffix}", up, act) for name, up, act in GRID]
    else:
        specs = [(variant_name(cfg.upsample, cfg.activation, bn, recipe_bn), cfg.upsample, cfg.activation)]
    task = r.task(*gray_stats(data.train.images))
    train = cfg.train_config(r, data.val is not None)
    trials = cfg.trials or (GRID_TRIALS if cfg.grid else 1)
    variants = []
    for name, upsample, activation in specs:
        model = UNet(
            depth=r.depth,
            base_features=cfg.width,
            upsample=upsample,
            activation=activation,
            batch_norm=bn,
        )
        variants.append(Variant(name, model, task, train, trials))
    return variants


def recipe_record(cfg: UNetConfig) -> dict[str, Any]:
    """What config.json keeps beside the flags: the recipe's name and its resolved values (a resumed run is
    checked against them)."""
    return {"recipe": cfg.recipe, "resolved": dataclasses.asdict(cfg.resolved())}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(UNetConfig, argv, __doc__, prog="python -m experiments.unet")
    return run_cli("unet", cfg, load_data, build_variants, recipe_record(cfg))


if __name__ == "__main__":
    sys.exit(main())

"""What a task adds to the generic trainer: input scaling, per-example loss and per-example metrics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxadl import metrics

KINDS = ("classification", "segmentation")


def equalize(x: jnp.ndarray, bins: int = 256) -> jnp.ndarray:
    """Histogram equalisation of each image [B, ...] in [0, 1]: a pixel becomes the share of its image's
    pixels at or below its level (of `bins` levels), so every image spans [0, 1] evenly."""
    flat = x.reshape(x.shape[0], -1)
    levels = jnp.clip((flat * bins).astype(jnp.int32), 0, bins - 1)
    counts = jax.vmap(lambda v: jnp.bincount(v, length=bins))(levels)
    cdf = jnp.cumsum(counts, axis=1) / flat.shape[1]
    return jnp.take_along_axis(cdf, levels, axis=1).reshape(x.shape).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Task:
    """A task: classification (integer labels) or segmentation (binary masks), with its input scaling.

    `mean`/`std` are per-channel in [0, 1] units; the report's recipe uses mean 0, std 1 (inputs / 255).
    """

    kind: str = "classification"
    num_classes: int = 43
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    label_smoothing: float = 0.0  # classification
    dice_weight: float = 0.0  # segmentation: loss = BCE + dice_weight * soft Dice loss
    image_norm: bool = False  # standardise each image by its own mean and std instead of mean/std above
    equalize: bool = False  # equalise each image's histogram first (evens out exposure and contrast)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; choose one of {', '.join(KINDS)}")

    @property
    def main_metric(self) -> str:
        """The metric used for model selection and tables: accuracy or per-image F1."""
        return "accuracy" if self.kind == "classification" else "f1"

    @property
    def eval_loss_name(self) -> str:
        """The loss as evaluated (val_loss, train_eval_loss)."""
        return "cross-entropy" if self.kind == "classification" else "BCE"

    @property
    def objective_name(self) -> str:
        """The training objective (train_loss): the evaluated loss plus smoothing or Dice."""
        if self.kind == "classification":
            smooth = f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else ""
            return f"cross-entropy{smooth}"
        return f"BCE + {self.dice_weight:g} × soft Dice" if self.dice_weight else "BCE"

    def normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        """Float images [B, H, W, C] in [0, 1] to the model's input scale."""
        if self.equalize:
            x = equalize(x)
        if self.image_norm:  # evens out the very dark and very bright photos of the same sign
            axes = tuple(range(1, x.ndim))
            mean = x.mean(axes, keepdims=True)
            return (x - mean) / jnp.sqrt(x.var(axes, keepdims=True) + 1e-4)
        return (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)

    def inputs(self, images: jnp.ndarray) -> jnp.ndarray:
        """uint8 images to normalised float32."""
        return self.normalize(images.astype(jnp.float32) / 255.0)

    def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        """Per-example training loss."""
        if self.kind == "classification":
            onehot = jax.nn.one_hot(labels, self.num_classes)
            if self.label_smoothing:
                onehot = optax.smooth_labels(onehot, self.label_smoothing)
            return optax.softmax_cross_entropy(logits, onehot)
        y = labels.astype(jnp.float32)
        axes = tuple(range(1, logits.ndim))
        loss = optax.sigmoid_binary_cross_entropy(logits, y).mean(axes)
        if self.dice_weight:
            p = jax.nn.sigmoid(logits)
            dice = (2 * jnp.sum(p * y, axes) + 1.0) / (jnp.sum(p, axes) + jnp.sum(y, axes) + 1.0)
            loss = loss + self.dice_weight * (1.0 - dice)
        return loss

    def metrics(self, logits: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Per-example evaluation metrics (the loss is the unsmoothed one)."""
        if self.kind == "classification":
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            return {"loss": loss, "accuracy": metrics.correct(logits, labels)}
        y = labels.astype(jnp.float32)
        loss = optax.sigmoid_binary_cross_entropy(logits, y).mean(tuple(range(1, logits.ndim)))
        return {"loss": loss, "f1": metrics.f1_per_image(logits, labels)}

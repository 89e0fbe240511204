"""Task types: input scaling, loss, metrics and the host-side finishing of an evaluation. A leaf module.

The step uses a task's `normalize`, `inputs`, `loss`, `metrics` and `main_metric`; evaluation finishes on the
host with `evaluate_logits` where a task needs it (segmentation's cleaned-mask F1). `Task` holds the input
scaling both tasks share; `Classification` and `Segmentation` are the report's two tasks. How a task is
reported (tables, figures, notes) is jaxadl.report's.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadl import metrics
from jaxadl.data.base import Split


def equalize(x: jnp.ndarray, bins: int = 256) -> jnp.ndarray:
    """Histogram equalisation of each image [B, ...] in [0, 1]: a pixel becomes the share of its image's
    pixels at or below its level (of `bins` levels), so every image spans [0, 1] evenly."""
    flat = x.reshape(x.shape[0], -1)
    levels = jnp.clip((flat * bins).astype(jnp.int32), 0, bins - 1)
    counts = jax.vmap(lambda v: jnp.bincount(v, length=bins))(levels)
    cdf = jnp.cumsum(counts, axis=1) / flat.shape[1]
    return jnp.take_along_axis(cdf, levels, axis=1).reshape(x.shape).astype(x.dtype)


class Evaluation(NamedTuple):
    """A trained trial on the evaluation split: per-example metrics, extra trial-record fields, logits."""

    per_example: dict[str, np.ndarray]
    record: dict[str, Any]
    logits: np.ndarray | None = None  # kept where the example figure needs them


class Task(abc.ABC):
    """The base of the task types: input scaling from the subclass's `mean`, `std`, `image_norm`, `equalize`.

    `mean`/`std` are per-channel in [0, 1] units; the report's recipe uses mean 0, std 1 (inputs / 255).
    A subclass is a frozen dataclass with those four fields and the class attributes and methods below.
    """

    kind: ClassVar[str]  # the "type" of the task in a run folder's records
    main_metric: ClassVar[str]  # used for model selection and tables
    finishes_on_host: ClassVar[bool] = False  # evaluation needs the logits on the host (evaluate_logits)
    eval_loss_name: ClassVar[str]  # the loss as evaluated (val_loss, train_eval_loss)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_norm: bool  # standardise each image by its own mean and std instead of mean/std
    equalize: bool  # equalise each image's histogram first (evens out exposure and contrast)

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

    @property
    @abc.abstractmethod
    def objective_name(self) -> str:
        """The training objective (train_loss): the evaluated loss plus what training adds to it."""

    @abc.abstractmethod
    def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        """Per-example training loss."""

    @abc.abstractmethod
    def metrics(self, logits: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Per-example evaluation metrics: "loss" (the evaluated loss) and the main metric."""

    @abc.abstractmethod
    def evaluate_logits(self, logits: np.ndarray, split: Split, cases: list[str]) -> Evaluation:
        """The split evaluated from logits made elsewhere (the mean of several trials' logits)."""

    def key(self, split: str) -> str:
        """The name of the main metric on a split in an epoch record: "val_accuracy", "train_f1"."""
        return f"{split}_{self.main_metric}"

    def to_record(self) -> dict[str, Any]:
        """The task as JSON for a run folder: its type and fields (see `from_record`)."""
        return {"type": self.kind, **dataclasses.asdict(self)}

    def record_fields(self, meta: Any) -> dict[str, Any]:
        """Fields of the dataset's meta that a trial record keeps for predicting later (none by default)."""
        return {}


@dataclasses.dataclass(frozen=True)
class Classification(Task):
    """Integer labels of `num_classes` classes: softmax cross-entropy (optionally label-smoothed), accuracy."""

    kind: ClassVar[str] = "classification"
    main_metric: ClassVar[str] = "accuracy"
    eval_loss_name: ClassVar[str] = "cross-entropy"
    num_classes: int = 43
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    label_smoothing: float = 0.0
    image_norm: bool = False
    equalize: bool = False

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    @property
    def objective_name(self) -> str:
        """The training objective (train_loss): cross-entropy, with its label smoothing if any."""
        smooth = f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else ""
        return f"cross-entropy{smooth}"

    def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        """Per-example training loss."""
        onehot = jax.nn.one_hot(labels, self.num_classes)
        if self.label_smoothing:
            onehot = optax.smooth_labels(onehot, self.label_smoothing)
        return optax.softmax_cross_entropy(logits, onehot)

    def metrics(self, logits: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Per-example evaluation metrics (the loss is the unsmoothed one)."""
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return {"loss": loss, "accuracy": metrics.correct(logits, labels)}

    def record_fields(self, meta: Any) -> dict[str, Any]:
        """The class names (GTSRB's sign names), so that predict.load(...).classify names its answers."""
        names = meta.get("class_names") if isinstance(meta, dict) else None
        return {"class_names": list(names)} if names else {}

    def evaluate_logits(self, logits: np.ndarray, split: Split, cases: list[str]) -> Evaluation:
        """Loss and accuracy of these logits on the split's labels."""
        measured = self.metrics(jnp.asarray(logits), jnp.asarray(split.labels))
        return Evaluation({k: np.asarray(v) for k, v in measured.items()}, {})


@dataclasses.dataclass(frozen=True)
class Segmentation(Task):
    """Binary masks: per-pixel BCE (plus `dice_weight` × soft Dice), per-image F1, and the host-side clean-up
    (largest two regions, holes filled: jaxadl.postprocess) reported beside the raw F1."""

    kind: ClassVar[str] = "segmentation"
    main_metric: ClassVar[str] = "f1"
    finishes_on_host: ClassVar[bool] = True  # the cleaned-mask F1 and the example figure need the logits
    eval_loss_name: ClassVar[str] = "BCE"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dice_weight: float = 0.0
    image_norm: bool = False
    equalize: bool = False

    def __post_init__(self) -> None:
        if not self.dice_weight >= 0:  # NaN too
            raise ValueError(f"dice_weight must be >= 0, got {self.dice_weight}")

    @property
    def objective_name(self) -> str:
        """The training objective (train_loss): BCE, plus the weighted soft Dice if any."""
        return f"BCE + {self.dice_weight:g} × soft Dice" if self.dice_weight else "BCE"

    def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        """Per-example training loss: BCE + dice_weight * soft Dice loss."""
        y = labels.astype(jnp.float32)
        axes = tuple(range(1, logits.ndim))
        loss = optax.sigmoid_binary_cross_entropy(logits, y).mean(axes)
        if self.dice_weight:
            p = jax.nn.sigmoid(logits)
            dice = (2 * jnp.sum(p * y, axes) + 1.0) / (jnp.sum(p, axes) + jnp.sum(y, axes) + 1.0)
            loss = loss + self.dice_weight * (1.0 - dice)
        return loss

    def metrics(self, logits: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Per-example evaluation metrics (the loss is BCE without Dice)."""
        y = labels.astype(jnp.float32)
        loss = optax.sigmoid_binary_cross_entropy(logits, y).mean(tuple(range(1, logits.ndim)))
        return {"loss": loss, "f1": metrics.f1_per_image(logits, labels)}

    def evaluate_logits(self, logits: np.ndarray, split: Split, cases: list[str]) -> Evaluation:
        """Per-image F1 of these logits, raw and after the clean-up, named by case."""
        from jaxadl.postprocess import clean_masks, f1_masks  # scipy, only where masks are cleaned

        measured = self.metrics(jnp.asarray(logits), jnp.asarray(split.labels))
        per_example = {k: np.asarray(v) for k, v in measured.items()}
        per_example["f1_post"] = f1_masks(clean_masks(logits > 0), split.labels)
        per_image = {
            "cases": cases,
            "f1": [round(float(v), 6) for v in per_example["f1"]],
            "f1_post": [round(float(v), 6) for v in per_example["f1_post"]],
        }
        return Evaluation(per_example, {"per_image": per_image}, logits)


TASKS: dict[str, type[Task]] = {t.kind: t for t in (Classification, Segmentation)}


def from_record(record: dict[str, Any]) -> Task:
    """The task a run folder recorded (`to_record`); records from before the task types still load."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
    old = "type" not in fields  # before the task types: `kind`, and the fields of both tasks
    kind = fields.pop("kind" if old else "type", "classification")
    if kind not in TASKS:
        raise ValueError(f"unknown task type {kind!r}; choose one of {', '.join(TASKS)}")
    cls = TASKS[kind]
    if old:
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in fields.items() if k in names}
    return cls(**fields)

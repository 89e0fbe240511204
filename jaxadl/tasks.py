"""Task types: what a task adds to the generic trainer and to a run's report. Adding a task is one class here.

The trainer uses a task's `normalize`, `inputs`, `loss`, `metrics` and `main_metric`; a run (jaxadl.experiment)
also asks it for its per-trial evaluation, log line, example figure and summary table. `Task` holds the
input scaling both tasks share; `Classification` and `Segmentation` are the report's two tasks.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadl import metrics
from jaxadl.report import by_variant, mean_std

if TYPE_CHECKING:  # jaxadl.train imports this module
    from jaxadl.data.base import Split
    from jaxadl.train import Evaluator, TrainState


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
    def chance_level(self, labels: np.ndarray) -> float:
        """The main metric of a model that learned nothing, on these labels."""

    @abc.abstractmethod
    def evaluate(self, evaluator: Evaluator, state: TrainState, split: Split, cases: list[str]) -> Evaluation:
        """A trained trial on the evaluation split (`cases`: the examples' names)."""

    @abc.abstractmethod
    def evaluate_logits(self, logits: np.ndarray, split: Split, cases: list[str]) -> Evaluation:
        """The split evaluated from logits made elsewhere (the mean of several trials' logits)."""

    @abc.abstractmethod
    def table(
        self, trials: Sequence[dict[str, Any]], split: str, ensembles: Sequence[dict[str, Any]] = ()
    ) -> str:
        """The run's results table (markdown): one row per trial and per ensemble, then one per variant."""

    def to_record(self) -> dict[str, Any]:
        """The task as JSON for a run folder: its type and fields (see `from_record`)."""
        return {"type": self.kind, **dataclasses.asdict(self)}

    def record_fields(self, meta: Any) -> dict[str, Any]:
        """Fields of the dataset's meta that a trial record keeps for predicting later (none by default)."""
        return {}

    def summary_note(self, summary: dict[str, dict[str, float]]) -> str:
        """Text after the main metric in a trial's log line (nothing by default)."""
        return ""

    def example_figure(
        self, split: Split, split_name: str, evaluation: Evaluation, title: str, path: Path
    ) -> Path | None:
        """A figure of one evaluated example, if the task draws one (none by default)."""
        return None


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

    def chance_level(self, labels: np.ndarray) -> float:
        """What a model that learned nothing scores: the majority class's share."""
        labels = np.asarray(labels)
        return float(np.bincount(labels.ravel().astype(np.int64)).max() / max(labels.size, 1))

    def record_fields(self, meta: Any) -> dict[str, Any]:
        """The class names (GTSRB's sign names), so that predict.load(...).classify names its answers."""
        names = meta.get("class_names") if isinstance(meta, dict) else None
        return {"class_names": list(names)} if names else {}

    def evaluate(self, evaluator: Evaluator, state: TrainState, split: Split, cases: list[str]) -> Evaluation:
        """The evaluator's padded on-device evaluation of the split."""
        return Evaluation(evaluator.evaluate(state, split), {})

    def evaluate_logits(self, logits: np.ndarray, split: Split, cases: list[str]) -> Evaluation:
        """Loss and accuracy of these logits on the split's labels."""
        measured = self.metrics(jnp.asarray(logits), jnp.asarray(split.labels))
        return Evaluation({k: np.asarray(v) for k, v in measured.items()}, {})

    def table(
        self, trials: Sequence[dict[str, Any]], split: str, ensembles: Sequence[dict[str, Any]] = ()
    ) -> str:
        """Table 1.4: variant, trial, accuracy on `split` (test, or val when there is no test set), mean ± std;
        an ensemble (the mean of a variant's trials' logits) as one more row of its variant."""
        lines = [
            f"| variant | trial | {split} accuracy | best val accuracy | epochs run | selected epoch |",
            "|---|---|---|---|---|---|",
        ]
        summary = ["", f"| variant | trials | mean ± std {split} accuracy |", "|---|---|---|"]
        for name, runs in by_variant(trials).items():
            accs = []
            for t in runs:
                if t.get("failed"):
                    lines.append(f"| {name} | {t['trial']} | failed: {t['failed']} | — | — | — |")
                    continue
                acc = t["eval"]["accuracy"]["mean"]
                accs.append(acc * 100)
                val = t.get("best_val")
                val_s = f"{val * 100:.2f} %" if val is not None else "—"
                lines.append(
                    f"| {name} | {t['trial']} | {acc * 100:.2f} % | {val_s} | {t['epochs_run']} "
                    f"| {t.get('best_epoch', '—')} |"
                )
            for e in _ensembles_of(ensembles, name):
                acc = e["eval"]["accuracy"]["mean"] * 100
                lines.append(f"| {name} | {ensemble_label(e)} | {acc:.2f} % | — | — | — |")
            mean = (
                f"{np.mean(accs):.2f} ± {np.std(accs):.2f} %"
                if len(accs) > 1
                else (f"{accs[0]:.2f} %" if accs else "—")
            )
            summary.append(f"| {name} | {len(accs)} | {mean} |")
        return "\n".join(lines + summary)


@dataclasses.dataclass(frozen=True)
class Segmentation(Task):
    """Binary masks: per-pixel BCE (plus `dice_weight` × soft Dice), per-image F1, and the host-side clean-up
    (largest two regions, holes filled: jaxadl.postprocess) reported beside the raw F1."""

    kind: ClassVar[str] = "segmentation"
    main_metric: ClassVar[str] = "f1"
    eval_loss_name: ClassVar[str] = "BCE"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dice_weight: float = 0.0
    image_norm: bool = False
    equalize: bool = False

    def __post_init__(self) -> None:
        if self.dice_weight < 0:
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

    def chance_level(self, labels: np.ndarray) -> float:
        """What a model that learned nothing scores: the mean F1 of calling every pixel foreground."""
        labels = np.asarray(labels)
        p = (labels > 0).reshape(len(labels), -1).mean(1)
        return float(np.mean(2 * p / (1 + p))) if len(p) else 0.0

    def evaluate(self, evaluator: Evaluator, state: TrainState, split: Split, cases: list[str]) -> Evaluation:
        """One forward pass for the metrics, the clean-up (`f1_post`) and the figure; per-image F1 named by case."""
        return self.evaluate_logits(evaluator.predict(state, split.images), split, cases)

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

    def summary_note(self, summary: dict[str, dict[str, float]]) -> str:
        """The worst image's F1, and the F1 after the clean-up."""
        return (
            f" (min over images {summary['f1']['min']:.4f}); cleaned up: {summary['f1_post']['mean']:.4f}"
            f" (min {summary['f1_post']['min']:.4f})"
        )

    def example_figure(
        self, split: Split, split_name: str, evaluation: Evaluation, title: str, path: Path
    ) -> Path | None:
        """The hardest image (lowest F1), titled with its case name: image, true mask, predicted mask, overlay."""
        from jaxadl import plots  # matplotlib, only where figures are drawn

        f1 = evaluation.per_example["f1"]
        worst = int(np.argmin(f1))
        cases = evaluation.record.get("per_image", {}).get("cases") or []
        named = f" ({cases[worst]})" if worst < len(cases) and str(cases[worst]) != str(worst) else ""
        return plots.segmentation(
            split.images[worst],
            split.labels[worst],
            evaluation.logits[worst] > 0,
            f"{title}: hardest {split_name} image #{worst}{named}",
            path,
            f1=float(f1[worst]),
        )

    def table(
        self, trials: Sequence[dict[str, Any]], split: str, ensembles: Sequence[dict[str, Any]] = ()
    ) -> str:
        """Table 2.1: modification, trial, cases, mean / std / min per-image F1, the same after the host-side
        clean-up ("—" where not recorded), an ensemble's row (the mean of the variant's trials' logits), and
        a per-variant summary of the trials."""
        lines = [
            f"| modification | trial | {split} cases | mean F1 | std F1 | min F1 "
            "| cleaned mean F1 | cleaned std F1 | cleaned min F1 | selected epoch |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        summary = [
            "",
            "| modification | trials | mean of mean F1 | mean of min F1 | cleaned: mean of mean F1 "
            "| cleaned: mean of min F1 |",
            "|---|---|---|---|---|---|",
        ]
        for name, runs in by_variant(trials).items():
            means, mins, post_means, post_mins = [], [], [], []
            for t in runs:
                if t.get("failed"):
                    lines.append(
                        f"| {name} | {t['trial']} | — | failed: {t['failed']} | — | — | — | — | — | — |"
                    )
                    continue
                f1, post = t["eval"]["f1"], t["eval"].get("f1_post")
                means.append(f1["mean"])
                mins.append(f1["min"])
                cleaned = "| — | — | —"
                if post is not None:
                    post_means.append(post["mean"])
                    post_mins.append(post["min"])
                    cleaned = f"| {post['mean']:.4f} | {post['std']:.4f} | {post['min']:.4f}"
                lines.append(
                    f"| {name} | {t['trial']} | {f1['n']} | {f1['mean']:.4f} | {f1['std']:.4f} | {f1['min']:.4f} "
                    f"{cleaned} | {t.get('best_epoch', '—')} |"
                )
            for e in _ensembles_of(ensembles, name):
                f1, post = e["eval"]["f1"], e["eval"]["f1_post"]
                lines.append(
                    f"| {name} | {ensemble_label(e)} | {f1['n']} | {f1['mean']:.4f} | {f1['std']:.4f} | {f1['min']:.4f} "
                    f"| {post['mean']:.4f} | {post['std']:.4f} | {post['min']:.4f} | — |"
                )
            summary.append(
                f"| {name} | {len(means)} | {mean_std(means)} | {mean_std(mins)} "
                f"| {mean_std(post_means)} | {mean_std(post_mins)} |"
            )
        return "\n".join(lines + summary)


def _ensembles_of(ensembles: Sequence[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    """The ensembles of one variant."""
    return [e for e in ensembles if e["variant"] == variant]


def ensemble_label(ensemble: dict[str, Any]) -> str:
    """An ensemble's trial column: whose logits it averages."""
    return f"mean of trials {', '.join(str(t) for t in ensemble['trials'])}"


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

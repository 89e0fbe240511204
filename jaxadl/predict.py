"""Load a trained model from a run folder and predict: classify signs, segment chest X-rays."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from PIL import Image

from jaxadl.checkpoint import DamagedCheckpointError, restore_weights
from jaxadl.models import SignCNN, UNet
from jaxadl.postprocess import clean_masks
from jaxadl.run_folder import RunFolder
from jaxadl.step import StepSpec, eval_logits, in_batches
from jaxadl.tasks import Task, from_record

_MODELS = {model.__name__: model for model in (SignCNN, UNet)}  # model_spec's "class" -> the class


class Classified(NamedTuple):
    """classify's answer: class ids [N], softmax probabilities [N, classes], class names [N]."""

    ids: np.ndarray
    probs: np.ndarray
    names: list[str]


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A trained model with its task (input scaling) and variables, ready to predict. With `members` (the
    variables of further trials of the same variant) it predicts the mean of all their logits."""

    model: Any
    task: Task
    variables: dict[str, Any] = dataclasses.field(repr=False)
    record: dict[str, Any] = dataclasses.field(repr=False)
    members: tuple[dict[str, Any], ...] = dataclasses.field(default=(), repr=False)

    def __repr__(self) -> str:
        r = self.record
        if self.members:
            return (
                f"Predictor({type(self.model).__name__}, variant={r.get('variant')!r}, "
                f"mean of {1 + len(self.members)} trials)"
            )
        metric = self.task.main_metric
        score = (r.get("eval") or {}).get(metric, {}).get("mean")
        scored = f", {metric}={score:.4f}" if score is not None else ""
        return (
            f"Predictor({type(self.model).__name__}, variant={r.get('variant')!r}, trial={r.get('trial')}, "
            f"epoch={r.get('best_epoch')}{scored})"
        )

    @property
    def class_names(self) -> list[str]:
        """Class names from the training data (GTSRB's sign names), else the ids as text."""
        names = self.record.get("class_names")
        if names:
            return list(names)
        return [str(i) for i in range(self.task.num_classes)]

    @property
    def image_size(self) -> int:
        """The side of the square images the model was trained on."""
        return int(self.record.get("image_size") or self.record["input_shape"][0])

    def _images(self, images: Any) -> np.ndarray:
        """Paths, PIL images or arrays -> uint8 [N, S, S, C] at the model's input size.

        Arrays are uint8 (0-255) or floating point in [0, 1]; other ranges are refused, not guessed."""
        channels = int(self.record["input_shape"][-1])
        items = images if isinstance(images, (list, tuple)) else [images]
        if isinstance(images, np.ndarray) and images.ndim == 4:
            items = list(images)
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                try:
                    item = Image.open(item)
                except OSError as e:
                    raise ValueError(f"cannot read image {item}: {e}") from e
            if isinstance(item, np.ndarray):
                arr = item
                arr = _to_uint8(arr)
                item = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
            item = item.convert("RGB" if channels == 3 else "L").resize(
                (self.image_size, self.image_size), Image.BILINEAR
            )
            arr = np.asarray(item, np.uint8)
            out.append(arr[..., None] if arr.ndim == 2 else arr)
        return np.stack(out)

    @functools.cached_property
    def _apply(self) -> Any:
        """Compiled once per predictor: uint8 batch -> logits."""
        spec = StepSpec(self.model, self.task, tta=bool(self.record.get("train_config", {}).get("tta")))

        def apply(variables, x):
            return eval_logits(spec, variables["params"], variables.get("batch_stats", {}), x)

        return jax.jit(apply)

    def batch_logits(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Logits for uint8 images already at the model's size [N, S, S, C], in batches (the mean over the
        members' logits when there are several)."""
        each = [
            in_batches(lambda x, v=variables: self._apply(v, x), images, batch_size)
            for variables in (self.variables, *self.members)
        ]
        return each[0] if len(each) == 1 else np.mean(each, axis=0)

    def logits(self, images: Any) -> np.ndarray:
        """Logits for image files, PIL images or arrays of any size (resized to the model's input)."""
        return self.batch_logits(self._images(images))

    def classify(self, images: Any) -> Classified:
        """Class ids, softmax probabilities and class names for an image file, array, or a list of them."""
        logits = self.logits(images)
        ids = logits.argmax(-1)
        names = self.class_names
        return Classified(ids, np.asarray(jax.nn.softmax(logits, -1)), [names[i] for i in ids])

    def segment(self, images: Any, save: str | Path | None = None, clean: bool = False) -> np.ndarray:
        """Binary masks uint8 [N, S, S] (1 = lung); `clean` keeps the largest two regions and fills holes
        (jaxadl.postprocess); `save` writes the first mask as a PNG (0/255)."""
        masks = self.logits(images)[..., 0] > 0
        masks = (clean_masks(masks) if clean else masks).astype(np.uint8)
        if save is not None:
            Image.fromarray(masks[0] * 255).save(save)
        return masks


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 arrays as they are; float arrays in [0, 1] scaled to 0-255; anything else is an error."""
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"image arrays must be uint8 (0-255) or float in [0, 1], got {arr.dtype}")
    if arr.size and (np.nanmin(arr) < 0.0 or np.nanmax(arr) > 1.0 or np.isnan(arr).any()):
        raise ValueError(
            f"float image arrays must hold values in [0, 1], got {np.nanmin(arr):g} to {np.nanmax(arr):g}; "
            "pass 0-255 images as uint8"
        )
    return np.round(arr * 255.0).astype(np.uint8)


def load(
    run_dir: str | Path, variant: str | None = None, trial: int | str = 1, *, average: bool = True
) -> Predictor:
    """The selected model (best-on-validation or last epoch, as the run chose) of one trial of a run;
    `trial="all"`: every finished trial of the variant, predicting the mean of their logits.
    `average=False`: the weights as trained, not the weight average a run with `--ema` kept and evaluated."""
    folder = RunFolder(run_dir)
    run_dir = folder.root
    records = folder.trial_records()
    if not records:
        raise FileNotFoundError(f"{run_dir} holds no finished trials (no {folder.trials_dir}/*.json)")
    if trial == "all":
        return _ensemble(run_dir, records, variant, average)
    if not isinstance(trial, int):
        raise ValueError(f"trial must be a trial number or 'all', got {trial!r}")
    chosen = None
    for rec in records:
        if (variant is None or rec["variant"] == variant) and rec["trial"] == trial and not rec.get("failed"):
            chosen = rec
            break
    if chosen is None:
        names = sorted({rec["variant"] for rec in records})
        raise ValueError(f"no finished trial {trial} of variant {variant!r} in {run_dir}; variants: {names}")
    return Predictor(*restore_trial(run_dir, chosen, average), chosen)


def _ensemble(run_dir: Path, records: list[dict[str, Any]], variant: str | None, average: bool) -> Predictor:
    """Every finished trial of one variant (the only one when `variant` is None) as one predictor."""
    names = sorted({rec["variant"] for rec in records})
    if variant is None and len(names) > 1:
        raise ValueError(f"{run_dir} holds several variants {names}; name one with variant=")
    chosen = [r for r in records if r["variant"] == (variant or names[0]) and not r.get("failed")]
    if not chosen:
        raise ValueError(f"no finished trial of variant {variant!r} in {run_dir}; variants: {names}")
    model, task, variables = restore_trial(run_dir, chosen[0], average)
    members = tuple(restore_trial(run_dir, rec, average)[2] for rec in chosen[1:])
    return Predictor(model, task, variables, chosen[0], members)


def restore_trial(
    run_dir: str | Path, record: dict[str, Any], average: bool = True
) -> tuple[Any, Task, dict[str, Any]]:
    """A finished trial's model, task and the variables it was evaluated with, rebuilt from its record
    (`average=False`: the trained weights, where the run kept a weight average beside them)."""
    spec = dict(record["model_spec"])
    model = _MODELS[spec.pop("class")](**spec)
    task = from_record(record["task"])
    which = "best" if record["train_config"]["select"] == "best" else "last"
    try:
        state = restore_weights(Path(run_dir) / record["checkpoints"] / which)
    except DamagedCheckpointError as e:
        folder, variant, trial = RunFolder(run_dir), record["variant"], record["trial"]
        raise DamagedCheckpointError(
            f"{e}; to train {variant} trial {trial} again, delete {folder.root / record['checkpoints']} and "
            f"{folder.trial_record(variant, trial)}, then re-run the run's command with --out={folder.root} --resume"
        ) from e
    # the weight average, when the run kept one, is what it evaluated
    weights = (average and state.get("ema")) or state
    variables = {"params": weights["params"]}
    if weights.get("batch_stats"):
        variables["batch_stats"] = weights["batch_stats"]
    return model, task, variables

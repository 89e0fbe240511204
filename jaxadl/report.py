"""How each task is reported: its results table (the report's tables 1.4 and 2.1), log note, chance level and
example figure, built from trial records. Depends on tasks and plots; nothing below imports it.

`for_task(task)` gives a task's reporter; `table(...)` lays out any task's rows the same way: one row per
trial, one per ensemble (the mean of a variant's trials' logits), then one summary row per variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxadl.data.base import Split
from jaxadl.tasks import Classification, Evaluation, Segmentation, Task


def by_variant(trials: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Trial records grouped by variant, in the order the variants first appear."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        out.setdefault(t["variant"], []).append(t)
    return out


def mean_std(values: list[float]) -> str:
    """`mean ± std` of several values, the value itself for one, "—" for none."""
    if not values:
        return "—"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def ensemble_label(ensemble: dict[str, Any]) -> str:
    """An ensemble's trial column: whose logits it averages."""
    return f"mean of trials {', '.join(str(t) for t in ensemble['trials'])}"


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


class ClassificationReport:
    """Table 1.4: accuracy per trial on the evaluated split, the best validation accuracy, mean ± std."""

    group = "variant"

    def columns(self, split: str) -> list[str]:
        return [f"{split} accuracy", "best val accuracy", "epochs run", "selected epoch"]

    def cells(self, record: dict[str, Any], ensemble: bool = False) -> list[str]:
        acc = f"{record['eval']['accuracy']['mean'] * 100:.2f} %"
        if ensemble:
            return [acc, "—", "—", "—"]
        val = record.get("best_val")
        val_s = f"{val * 100:.2f} %" if val is not None else "—"
        return [acc, val_s, record["epochs_run"], record.get("best_epoch", "—")]

    def failed_cells(self, message: str) -> list[str]:
        return [f"failed: {message}", "—", "—", "—"]

    def summary_columns(self, split: str) -> list[str]:
        return [f"mean ± std {split} accuracy"]

    def summary_cells(self, trials: Sequence[dict[str, Any]]) -> list[str]:
        accs = [t["eval"]["accuracy"]["mean"] * 100 for t in trials]
        if len(accs) > 1:
            return [f"{np.mean(accs):.2f} ± {np.std(accs):.2f} %"]
        return [f"{accs[0]:.2f} %" if accs else "—"]

    def note(self, summary: dict[str, dict[str, float]]) -> str:
        """Text after the main metric in a trial's log line: nothing for classification."""
        return ""

    def chance_level(self, labels: np.ndarray) -> float:
        """What a model that learned nothing scores: the majority class's share."""
        labels = np.asarray(labels)
        if labels.size == 0:
            return 0.0
        return float(np.bincount(labels.ravel().astype(np.int64)).max() / labels.size)

    def example_figure(self, split: Split, split_name: str, evaluation: Evaluation, title: str, path: Path):
        """No example figure for classification."""
        return None


class SegmentationReport:
    """Table 2.1: per-image F1 (mean, std, min) per trial, raw and after the host-side clean-up."""

    group = "modification"

    def columns(self, split: str) -> list[str]:
        raw = ["mean F1", "std F1", "min F1"]
        return [f"{split} cases", *raw, *(f"cleaned {c}" for c in raw), "selected epoch"]

    def cells(self, record: dict[str, Any], ensemble: bool = False) -> list[str]:
        f1, post = record["eval"]["f1"], record["eval"].get("f1_post")
        cleaned = ["—"] * 3 if post is None else [f"{post[k]:.4f}" for k in ("mean", "std", "min")]
        epoch = "—" if ensemble else record.get("best_epoch", "—")
        return [f1["n"], *(f"{f1[k]:.4f}" for k in ("mean", "std", "min")), *cleaned, epoch]

    def failed_cells(self, message: str) -> list[str]:
        return ["—", f"failed: {message}", *["—"] * 6]

    def summary_columns(self, split: str) -> list[str]:
        return ["mean of mean F1", "mean of min F1", "cleaned: mean of mean F1", "cleaned: mean of min F1"]

    def summary_cells(self, trials: Sequence[dict[str, Any]]) -> list[str]:
        cleaned = [t["eval"]["f1_post"] for t in trials if t["eval"].get("f1_post") is not None]
        return [
            mean_std([t["eval"]["f1"]["mean"] for t in trials]),
            mean_std([t["eval"]["f1"]["min"] for t in trials]),
            mean_std([p["mean"] for p in cleaned]),
            mean_std([p["min"] for p in cleaned]),
        ]

    def note(self, summary: dict[str, dict[str, float]]) -> str:
        """The worst image's F1, and the F1 after the clean-up."""
        return (
            f" (min over images {summary['f1']['min']:.4f}); cleaned up: {summary['f1_post']['mean']:.4f}"
            f" (min {summary['f1_post']['min']:.4f})"
        )

    def chance_level(self, labels: np.ndarray) -> float:
        """What a model that learned nothing scores: the mean F1 of calling every pixel foreground."""
        labels = np.asarray(labels)
        if len(labels) == 0:
            return 0.0
        p = (labels > 0).reshape(len(labels), -1).mean(1)
        return float(np.mean(2 * p / (1 + p)))

    def example_figure(self, split: Split, split_name: str, evaluation: Evaluation, title: str, path: Path):
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


_REPORTERS = {Classification: ClassificationReport(), Segmentation: SegmentationReport()}


def for_task(task: Task) -> ClassificationReport | SegmentationReport:
    """The reporter of a task's type."""
    return _REPORTERS[type(task)]


def table(
    task: Task, trials: Sequence[dict[str, Any]], split: str, ensembles: Sequence[dict[str, Any]] = ()
) -> str:
    """The run's results table (markdown): one row per trial and per ensemble, then one summary row per
    variant over its finished trials (an ensemble counts as none)."""
    rep = for_task(task)
    columns = [rep.group, "trial", *rep.columns(split)]
    lines = [_row(columns), _row(["---"] * len(columns)).replace(" ", "")]
    summary_columns = [rep.group, "trials", *rep.summary_columns(split)]
    summary = ["", _row(summary_columns), _row(["---"] * len(summary_columns)).replace(" ", "")]
    for name, runs in by_variant(trials).items():
        done = [t for t in runs if not t.get("failed")]
        for t in runs:
            cells = rep.failed_cells(t["failed"]) if t.get("failed") else rep.cells(t)
            lines.append(_row([name, t["trial"], *cells]))
        for e in (e for e in ensembles if e["variant"] == name):
            lines.append(_row([name, ensemble_label(e), *rep.cells(e, ensemble=True)]))
        summary.append(_row([name, len(done), *rep.summary_cells(done)]))
    return "\n".join(lines + summary)


def variant_panels(
    tasks: Sequence[Task], trials: Sequence[dict[str, Any]]
) -> dict[str, dict[str, list[np.ndarray]]]:
    """The curves of the variants figure: training objective and validation metric per epoch, per trial."""
    metric, val_key = tasks[0].main_metric, tasks[0].key("val")
    objectives = {t.objective_name for t in tasks}  # named on the axis when the variants share it
    objective = f" ({objectives.pop()})" if len(objectives) == 1 else ""
    panels: dict[str, dict[str, list[np.ndarray]]] = {
        f"training objective{objective}, epoch mean": {},
        f"val {metric}": {},
    }
    for t in trials:
        for curves, key in zip(panels.values(), ("train_loss", val_key), strict=True):
            history = t.get("history", [])
            rows = [r.get(key, np.nan) for r in history] if any(key in r for r in history) else []
            curves.setdefault(t["variant"], []).append(np.asarray(rows, float))  # NaN: an epoch not validated
    return {k: c for k, c in panels.items() if any(len(r) for runs in c.values() for r in runs)}

"""What the reproduced report reads from a run folder, and the cells its tables share: the run's records,
the split it scored, mean ± std and a 95 % t-interval over trials, wall times, the figures of each trial."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxadl import seed
from jaxadl.data.base import Dataset, Split
from jaxadl.document_render import Block, Figure, Paragraph
from jaxadl.report import by_variant
from jaxadl.run_folder import RunFolder, read_record

NO_TEST_SPLIT = "validation cases held out from the training data (no official test split present)"


@dataclasses.dataclass(frozen=True)
class Run:
    """One grid's run folder as the report reads it: results.json, config.json and the folder's file names."""

    grid: str  # "cnn" or "unet"
    folder: RunFolder
    results: dict[str, Any]
    config: dict[str, Any]

    @property
    def split(self) -> str:
        return self.results.get("eval_split", "test")

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.results.get("trials", []))

    @property
    def recipe(self) -> str:
        return str(self.config.get("recipe") or "—")

    def variants(self) -> dict[str, list[dict[str, Any]]]:
        """Trial records by variant, in the grid's order."""
        return by_variant(self.trials)

    def finished(self, variant: str) -> list[dict[str, Any]]:
        return [t for t in self.variants().get(variant, []) if not t.get("failed")]

    def ensemble(self, variant: str) -> dict[str, Any] | None:
        """The mean of the variant's trials' logits, evaluated (results.json "ensembles"), if the run made one."""
        return next((e for e in self.results.get("ensembles") or [] if e["variant"] == variant), None)

    def main_variant(self) -> str | None:
        """The variant the extras look at: the one reproducing the report's baseline, else the first finished."""
        names = [v for v in self.variants() if self.finished(v)]
        return next((v for v in names if seed.key(v) == "baseline"), names[0] if names else None)

    def scored(self, data: Dataset | None) -> tuple[str, Split | None]:
        """The scored split's name and its images in `data` (None without data)."""
        return self.split, (None if data is None else getattr(data, self.split, None))


def load_run(grid: str, path: str | Path | None) -> Run | str:
    """A run folder's records, or the sentence saying why there are none."""
    if path is None:
        return f"No {grid.upper() if grid == 'cnn' else 'U-Net'} run was given: this part was not reproduced."
    folder = RunFolder(path)
    if not folder.results_json.exists():
        return f"`{folder.root}` holds no results.json (the grid has not finished): this part is missing."
    config = read_record(folder.config) if folder.config.exists() else {}
    return Run(grid, folder, read_record(folder.results_json), config)


def describe_split(run: Run, data: Dataset | None, images: str = "images") -> str:
    """Which images were scored, in words."""
    n = _scored_count(run)
    if run.split != "test":
        return f"{n} {NO_TEST_SPLIT}"
    name = run.results.get("dataset") or (data.name if data is not None else "the dataset")
    return f"the {n} {images} of the test split of {name}"


def _scored_count(run: Run) -> int | str:
    for t in run.trials:
        for summary in (t.get("eval") or {}).values():
            return int(summary["n"])
    return "?"


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> tuple[str, str]:
    """`mean ± std` (std with n − 1) and the 95 % t-interval of the mean over trials; "—" where undefined."""
    values = [float(v) for v in values]
    if not values:
        return "—", "—"
    if len(values) == 1:
        return fmt(values[0]), "—"
    from scipy import stats  # only where intervals are drawn

    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return f"{fmt(mean)} ± {fmt(std)}", f"[{fmt(mean - half)}, {fmt(mean + half)}]"


def wall_time(record: dict[str, Any]) -> str:
    """A trial's training plus compile time, e.g. "4 min 05 s" (no-break spaces); for trials trained
    together, its share of the program's time, marked "(share)"."""
    if "train_seconds" not in record:
        return "—"
    seconds = float(record["train_seconds"]) + float(record.get("compile_seconds", 0.0))
    share = " (share)" if record.get("trained_together") else ""
    if seconds < 60:
        return f"{seconds:.1f}\u00a0s{share}"  # no break before the unit in a narrow column
    minutes, rest = divmod(round(seconds), 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {rest:02d} s"
    return text.replace(" ", "\u00a0") + share


def epochs(record: dict[str, Any]) -> str:
    """Epochs run (full-batch steps for a full-batch trial)."""
    if "epochs_run" not in record:
        return "—"
    full = (record.get("train_config") or {}).get("full_batch")
    n = record["epochs_run"]
    return f"{n} full-batch step{'s' * (n != 1)}" if full else str(n)


def figure(path: Path, name: str, caption: str) -> list[Block]:
    """A figure block, or a sentence saying it is missing."""
    if not Path(path).exists():
        return [Paragraph(f"(figure missing: `{path}`; {caption})")]
    return [Figure(Path(path), name, caption)]


def trial_figures(run: Run, kind: str, seed_kind: str | None, what: str) -> list[Block]:
    """Each trial's plots/<variant>_trialN_<kind>.png, captioned with the report's figure it corresponds to."""
    blocks: list[Block] = []
    for variant, records in run.variants().items():
        for r in records:
            if r.get("failed"):
                continue
            original = seed.figure(seed_kind, variant, r["trial"]) if seed_kind else None
            matches = (
                f"Corresponds to the original's {original}."
                if original
                else "No counterpart in the original."
            )
            path = run.folder.plot(variant, r["trial"], kind)
            blocks += figure(
                path, f"{run.grid}_{path.name}", f"{variant}, trial {r['trial']}: {what}. {matches}"
            )
    return blocks


def predictions_note(measured: float, recorded: float | None, fmt: Callable[[float], str]) -> str:
    """A sentence comparing the document's own predictions with the run's recorded score."""
    if recorded is None:
        return f"These predictions score {fmt(measured)}."
    same = "the same as" if abs(measured - recorded) < 5e-4 else "against"
    return f"These predictions score {fmt(measured)}, {same} the run's recorded {fmt(recorded)}."

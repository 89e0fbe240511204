"""The files of one run folder, by name: experiments write them, sweeps, evaluation and predict read them.

<root>/config.json                      the options of the run (experiment, cli, recipe)
<root>/metrics.jsonl                    one line per epoch and trial
<root>/trials/<variant>_trialN.json     one finished trial (its history, evaluation, checkpoints)
<root>/checkpoints/<variant>_trialN/    orbax checkpoints of a trial (last N and best)
<root>/plots/<variant>_trialN_<kind>.png, <variant>_mean_of_trials_<kind>.png (kind: loss, history, example;
                                        eval_example after --eval-only; eval_tta_example after --eval-only --tta)
<root>/results.json, results.md, variants.png; eval.json, eval.md after --eval-only (eval_tta.*,
                                        eval_no_tta.* when --tta was given, so the run's own evaluation stays)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any


class RunFolderError(Exception):
    """The output folder holds another experiment's run, or nothing to evaluate; the message names it."""


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file, so that a reader never sees half a file."""
    write_whole(path, json.dumps(obj, indent=2, default=str))


def read_record(path: Path) -> dict[str, Any]:
    """A JSON object a run wrote (config, results, a trial's record); a missing, damaged or other-shaped file
    is a ValueError that names it, not a traceback from wherever it is first indexed."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot be read as JSON ({e})") from e
    return parse_record(text, path)


def parse_record(text: str, path: Path) -> dict[str, Any]:
    """read_record for text already read (a trial's record broadcast from process 0); errors name `path`."""
    try:
        record = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: cannot be read as JSON ({e})") from e
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds a JSON {type(record).__name__}, not the object a run writes")
    return record


def write_whole(path: Path, text: str) -> None:
    """Write text through a temporary file and a rename: the file is the old one or the new one, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def slug(name: str) -> str:
    """A variant name as it appears in file names ("batch norm" -> "batch-norm")."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def recipe_values(resolved: Any, key: str) -> list[Any]:
    """The values a saved run's recipe took for `key` (one per optimizer where it has several)."""
    if not isinstance(resolved, dict):
        return []
    if key in resolved:
        return [resolved[key]]
    return [x for v in resolved.values() if isinstance(v, dict) for x in recipe_values(v, key)]


def recipe_changes(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, saved value, today's value) for each recipe value that differs between a saved run's resolved
    recipe and today's ("adam.select", "best", "last"); a value only one of them has (a field added since)
    is not a difference."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    out = []
    for k in sorted(set(old) & set(new)):
        if isinstance(old[k], dict) and isinstance(new[k], dict):
            out += recipe_changes(old[k], new[k], f"{prefix}{k}.")
        elif old[k] != new[k]:
            out.append((f"{prefix}{k}", old[k], new[k]))
    return out


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder; nothing else builds them."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def results_json(self) -> Path:
        return self.root / "results.json"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    @property
    def eval_json(self) -> Path:
        return self.root / "eval.json"

    @property
    def eval_md(self) -> Path:
        return self.root / "eval.md"

    def eval_stem(self, tta: bool | None = None) -> str:
        """The re-evaluation's file stem: `eval` as the run evaluated, `eval_tta` / `eval_no_tta` with
        --tta given, so evaluating both ways keeps both."""
        return "eval" if tta is None else "eval_tta" if tta else "eval_no_tta"

    @property
    def variants_plot(self) -> Path:
        return self.root / "variants.png"

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @staticmethod
    def tag(variant: str, trial: int) -> str:
        """How one trial is named in file names: <variant slug>_trialN."""
        return f"{slug(variant)}_trial{trial}"

    def trial_record(self, variant: str, trial: int) -> Path:
        return self.trials_dir / f"{self.tag(variant, trial)}.json"

    def checkpoints(self, variant: str, trial: int) -> Path:
        return self.checkpoints_dir / self.tag(variant, trial)

    def plot(self, variant: str, trial: int, kind: str) -> Path:
        """plots/<variant>_trialN_<kind>.png (kind: loss, history, example)."""
        return self.root / "plots" / f"{self.tag(variant, trial)}_{kind}.png"

    def ensemble_plot(self, variant: str, kind: str) -> Path:
        """plots/<variant>_mean_of_trials_<kind>.png: a figure of the mean of the variant's trials' logits."""
        return self.root / "plots" / f"{slug(variant)}_mean_of_trials_{kind}.png"

    def trial_files(self) -> list[Path]:
        """Every finished trial's record file, in name order ([] when there are none)."""
        return sorted(self.trials_dir.glob("*.json")) if self.trials_dir.is_dir() else []

    def trial_records(self) -> list[dict[str, Any]]:
        """Every finished trial's record, in file-name order ([] when there are none)."""
        return [read_record(p) for p in self.trial_files()]

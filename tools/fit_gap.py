"""How well cross-validation runs fit the cases they trained on, beside their fold's validation cases:
`python -m tools.fit_gap RUN [RUN ...]`.

Each run's saved model (a run of several trials: the mean of their logits; `--variant`: which one of a grid;
`--raw`: the trained weights, not a weight average kept with `--ema`) is scored on its fold's training cases,
without augmentation, and on its validation cases, evaluated as the run evaluates (with TTA where it used it). A gap of a few points with the
training cases fitted says the lever to look for generalises; training cases not fitted say it fits faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tools.cv_ensemble import check_raw, evaluate_mean, run_data


def fit_gap(run: Path, raw: bool = False, variant: str | None = None) -> dict[str, Any]:
    """The run's main metric (its mean over the cases) on its training and its validation cases; a variant of
    several trials: the mean of their logits."""
    from jaxadl.run_folder import read_record
    from jaxadl.saved_runs import load_all

    data = run_data(run, read_record(run / "config.json"))
    predictor = load_all(run, variant, average=not raw)
    if raw:
        check_raw([run], [predictor])
    metric = predictor.task.main_metric
    out: dict[str, Any] = {"run": str(run), "metric": metric, "trials": 1 + len(predictor.members)}
    for name in ("train", "val"):
        evaluation = evaluate_mean([predictor], data, name)
        out[name] = float(np.mean(evaluation.per_example[metric]))
        out[f"{name}_cases"] = len(evaluation.per_example[metric])
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table: accuracy in % (the gap in points), F1 as fractions."""
    percent = rows[0]["metric"] == "accuracy"
    fmt = (lambda v: f"{100 * v:.2f} %") if percent else (lambda v: f"{v:.4f}")
    gap = (lambda v: f"{100 * v:.2f} points") if percent else (lambda v: f"{v:.4f}")
    lines = [
        f"| run | train {rows[0]['metric']} (cases) | val {rows[0]['metric']} (cases) | train - val |",
        "|---|---|---|---|",
    ]
    for r in rows:
        trials = f" ({r['trials']} trials: the mean of their logits)" if r["trials"] > 1 else ""
        lines.append(
            f"| {r['run']}{trials} | {fmt(r['train'])} ({r['train_cases']}) | {fmt(r['val'])} ({r['val_cases']}) "
            f"| {gap(r['train'] - r['val'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].rstrip(":"))
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders of cross-validation folds (--cv-folds)"
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="score the trained weights, not the weight average a run kept with --ema",
    )
    parser.add_argument("--variant", help="the variant to score in a run of several (--grid)")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "config.json").is_file():
            parser.error(f"{run} is not a run folder (no config.json)")
    import jaxadl  # noqa: F401  (the fast XLA:CPU flags, before JAX starts)
    from jaxadl.checkpoint import CheckpointError
    from jaxadl.data.base import DatasetError
    from jaxadl.run_folder import RunFolderError

    rows = []
    for run in args.runs:
        try:
            rows.append(fit_gap(run, args.raw, args.variant))
        except (OSError, ValueError, KeyError, CheckpointError, DatasetError, RunFolderError) as e:
            parser.error(f"{run}: {e}")
        if len({r["metric"] for r in rows}) > 1:
            parser.error(
                f"{run}: another task than {args.runs[0]} ({rows[-1]['metric']} against {rows[0]['metric']})"
            )
        print(f"{run}: train {rows[-1]['train']:.4f}, val {rows[-1]['val']:.4f}", flush=True)
    print("\n" + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

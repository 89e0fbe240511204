"""Pool a cross-validation sweep's runs per lever: `python -m tools.cv_summary SWEEP_DIR`.

Run folders named `<lever>_f<K>` (fold K of a `--cv-folds` sweep, e.g. experiments/sweeps/lungs_worst_cases.txt)
are grouped by lever. Segmentation: every fold's per-case F1 pooled, so each case counts once per seed:
mean, 5th percentile, minimum and the worst case. Classification: the mean over folds of the evaluated
accuracy (each fold's held-out tracks). Only finished trials count; a lever missing folds says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = re.compile(r"^(?P<lever>.+)_f(?P<fold>\d+)$")


def trials(folder: Path) -> list[dict[str, Any]]:
    """The finished trial records of a run folder."""
    return [json.loads(p.read_text()) for p in sorted((folder / "trials").glob("*.json"))]


def finished_folds(sweep: Path) -> dict[str, set[int]]:
    """Per lever: the folds with a finished (not failed) trial."""
    folds: dict[str, set[int]] = {}
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir()):
        match = FOLDER.match(folder.name)
        if match:
            done = folds.setdefault(match["lever"], set())
            if any("failed" not in r for r in trials(folder)):
                done.add(int(match["fold"]))
    return folds


def pool(sweep: Path, only: set[int] | None = None) -> dict[str, dict[str, Any]]:
    """Per lever: folds found, and either the pooled per-case F1 (name, value) or the per-fold accuracies;
    `only`: pool these folds alone (the folds every lever finished, to compare a sweep still running)."""
    levers: dict[str, dict[str, Any]] = defaultdict(lambda: {"folds": set(), "cases": [], "accuracy": []})
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir()):
        match = FOLDER.match(folder.name)
        if not match:
            continue
        lever = levers[match["lever"]]  # listed even with no fold pooled
        if only is not None and int(match["fold"]) not in only:
            continue
        for record in trials(folder):
            if "failed" in record:
                continue
            lever["folds"].add(int(match["fold"]))
            if "per_image" in record:
                per = record["per_image"]
                lever["cases"] += list(zip(per["cases"], per["f1"], strict=True))
            else:
                lever["accuracy"].append(record["eval"]["accuracy"]["mean"])
    return dict(levers)


def row(name: str, lever: dict[str, Any]) -> str:
    """One markdown row: lever, folds, cases, mean, 5th percentile, minimum, worst case (or accuracy)."""
    folds = ",".join(str(k) for k in sorted(lever["folds"]))
    if not lever["cases"] and not lever["accuracy"]:
        return f"| {name} | none finished |"
    if lever["cases"]:
        values = np.array([v for _, v in lever["cases"]])
        worst = min(lever["cases"], key=lambda c: c[1])
        return (
            f"| {name} | {folds} | {len(values)} | {values.mean():.4f} | {np.percentile(values, 5):.4f} | "
            f"{values.min():.4f} | {worst[0]} |"
        )
    acc = np.array(lever["accuracy"])
    return f"| {name} | {folds} | {len(acc)} runs | {100 * acc.mean():.2f} % | {100 * acc.min():.2f} % |"


def worst_cases(levers: dict[str, dict[str, Any]], n: int, reference: str) -> str:
    """A markdown table of the reference lever's n lowest cases with every lever's F1 on each (paired)."""
    scores = {name: dict(lever["cases"]) for name, lever in levers.items() if lever["cases"]}
    if reference not in scores:
        raise ValueError(f"no finished segmentation fold of the reference lever {reference!r}")
    names = [reference, *sorted(set(scores) - {reference})]
    out = ["| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for case in sorted(scores[reference], key=scores[reference].get)[:n]:
        cells = [f"{scores[k][case]:.4f}" if case in scores[k] else "" for k in names]
        out.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder holding <lever>_f<K> run folders")
    parser.add_argument(
        "--common-folds",
        action="store_true",
        help="pool only the folds every lever has finished (a fair comparison while the sweep runs)",
    )
    parser.add_argument(
        "--worst",
        type=int,
        default=0,
        help="then the reference lever's N lowest cases, every lever's F1 on each",
    )
    parser.add_argument("--reference", default="default", help="the lever --worst ranks cases by")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        parser.error(f"{args.sweep} is not a folder")
    only = None
    if args.common_folds:
        only = set.intersection(*finished_folds(args.sweep).values() or [set()])
        if not only:
            parser.error(f"{args.sweep}: no fold is finished by every lever yet")
        print(f"folds every lever finished: {','.join(map(str, sorted(only)))}\n")
    levers = pool(args.sweep, only)
    if not any(lever["folds"] for lever in levers.values()):
        parser.error(f"{args.sweep} holds no finished run folders named <lever>_f<K>")
    segmentation = any(lever["cases"] for lever in levers.values())
    if segmentation:
        print(
            "| lever | folds | cases | mean F1 | 5th percentile | min | worst case |\n|---|---|---|---|---|---|---|"
        )
    else:
        print("| lever | folds | runs | mean accuracy over folds | lowest fold |\n|---|---|---|---|---|")
    for name, lever in levers.items():
        print(row(name, lever))
    if args.worst:
        try:
            print("\n" + worst_cases(levers, args.worst, args.reference))
        except ValueError as e:
            parser.error(f"--reference={args.reference}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The mean of several levers' logits on each cross-validation fold, as one more lever of the sweep folder:
`python -m tools.cv_ensemble SWEEP_DIR --levers=depth5,depth5_seed1`; with `--tta`, each model evaluated on
the mean of each image's and its four 1-pixel shifts' logits (one lever alone: `--levers=depth5 --tta`); with
`--raw`, each run's trained weights rather than the weight average a run with `--ema` kept and scored, so one
run measures the average against the weights it trained (`--levers=rprop_ema0.9 --raw`); a lever run without
`--ema` may be named beside such runs (its weights are its trained ones).

Two seeds of one recipe averaged this way are the report's "mean of trials" measured on the folds (it evens
out seed-to-seed spread, which is what the worst cases suffer from). For every fold K that each lever has
finished (`<lever>_f<K>` run folders kept with `--keep=1`), the fold's validation cases are drawn again from
the first lever's config, each run's saved model predicts them (a run of several trials: their mean), and
the mean of the logits is scored like a trial. The result is written as `<name>_f<K>` run folders beside
the others, so `python -m tools.cv_summary SWEEP_DIR` pools, pairs (`--worst`) and records it like any lever.
Run again as a sweep goes on, it adds the folds finished since and keeps those it wrote before.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import config_class
from tools.cv_summary import default_name, finished_folds

# the config fields that decide which cases a fold's run is evaluated on (and how they are read)
DATA_FIELDS = ("dataset", "data_dir", "cv_folds", "cv_fold", "split_seed", "image_size", "test_fraction")


def common_folds(sweep: Path, levers: list[str]) -> list[int]:
    """The folds every lever has finished in the sweep folder; a lever with none is an error."""
    done = finished_folds(sweep)
    missing = [name for name in levers if not done.get(name)]
    if missing:
        raise ValueError(f"{sweep} holds no finished run of {', '.join(missing)} (folders <lever>_f<K>)")
    folds = sorted(set.intersection(*(done[name] for name in levers)))
    if not folds:
        raise ValueError(f"{sweep}: no fold is finished by all of {', '.join(levers)}")
    return folds


def _data_of(config: dict[str, Any]) -> dict[str, Any]:
    cli = config["cli"]
    return {k: v for k, v in cli.items() if k in DATA_FIELDS or k.startswith("synthetic_")}


def run_data(run: Path, config: dict[str, Any]) -> Any:
    """The dataset a cross-validation fold's run folder was trained on, read as its saved flags name it; an
    error when it has no validation split (not a fold's run)."""
    from experiments.cli import saved_config

    experiment = config["experiment"]
    module, cls = importlib.import_module(f"experiments.{experiment}"), config_class(experiment)
    data = module.load_data(saved_config(cls, cls(eval_only=True, from_run=str(run)), experiment))
    if data.val is None:
        raise ValueError(f"{run}'s data has no validation split: not a cross-validation fold's run")
    return data


def check_raw(runs: list[Path], predictors: list[Any]) -> None:
    """--raw scores the trained weights instead of kept weight averages: an error when no run kept one (a run
    without one beside runs with one is scored on its weights, which are its trained ones)."""
    if not any(p.record["train_config"].get("ema") for p in predictors):
        which = f"{runs[0]} kept no" if len(runs) == 1 else "none of " + ", ".join(map(str, runs)) + " kept a"
        raise ValueError(f"{which} weight average (trained without --ema), so --raw changes nothing")


def note_tta(levers: list[str], runs: list[Path]) -> None:
    """--tta beside runs that already evaluate with it (trained with --tta, as the strong CNN recipe is): a note,
    once for all folds, that it changes nothing; not an error, so a recorded command that named it still runs."""
    from jaxadl.run_folder import RunFolder

    records = [r for run in runs for r in RunFolder(run).trial_records()]
    if records and all(r.get("train_config", {}).get("tta") for r in records):
        print(
            f"note: --tta changes nothing here: {', '.join(levers)} already evaluate(s) with "
            "test-time augmentation (trained with --tta); the figure is the one without --tta",
            file=sys.stderr,
        )


def evaluate_mean(predictors: list[Any], data: Any, split_name: str) -> Any:
    """The mean of the predictors' logits on one split of the data, evaluated case by case (an Evaluation)."""
    from jaxadl.saved_runs import case_names

    split = data.splits()[split_name]
    batch = int(predictors[0].record["train_config"].get("eval_batch_size", 16))
    logits = np.mean([p.batch_logits(split.images, batch) for p in predictors], axis=0)
    return predictors[0].task.evaluate_logits(logits, split, case_names(data, split_name, len(split)))


def ensemble_fold(
    runs: list[Path], tta: bool = False, raw: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mean of the runs' logits on their fold's validation cases, also beside a test split (`tta`: each
    with test-time augmentation; `raw`: each run's trained weights, not its weight average): the trial record,
    and the first run's config (which the ensemble's run folder keeps)."""
    from jaxadl.run_folder import read_record
    from jaxadl.saved_runs import load_all, summary

    configs = [read_record(run / "config.json") for run in runs]
    for run, config in zip(runs[1:], configs[1:], strict=True):
        if config["experiment"] != configs[0]["experiment"] or _data_of(config) != _data_of(configs[0]):
            raise ValueError(f"{run} was evaluated on other data than {runs[0]}: {_data_of(config)}")
    data = run_data(runs[0], configs[0])
    split_name = "val"  # the fold's cases, which the folds pool, even beside a test split
    options = {"tta": True} if tta else {}
    predictors = [load_all(run, None, options, average=not raw) for run in runs]
    if raw:
        check_raw(runs, predictors)
    evaluation = evaluate_mean(predictors, data, split_name)
    record = {
        "variant": predictors[0].record["variant"],
        "trial": 1,
        "task": predictors[0].record["task"],
        "ensemble_of": [run.name for run in runs],
        **({"eval_options": options} if options else {}),
        **({"eval_weights": "trained"} if raw else {}),
        "eval_split": split_name,
        **evaluation.record,
        "eval": summary(evaluation),
    }
    return record, configs[0]


def _same_ensemble(folder: Path, levers: list[str], tta: bool, raw: bool) -> bool:
    """Whether the folder is this tool's finished mean of the same levers, evaluated the same way (a fold
    done by an earlier call)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    same = config.get("ensemble_levers") == levers and bool(config.get("ensemble_tta")) == tta
    same = same and bool(config.get("ensemble_raw")) == raw
    return same and any((folder / "trials").glob("*.json"))


def write_fold(sweep: Path, name: str, fold: int, record: dict[str, Any], config: dict[str, Any]) -> Path:
    """`<name>_f<fold>` in the sweep folder, complete or not at all (written aside, then renamed)."""
    from jaxadl.run_folder import RunFolder

    final = sweep / f"{name}_f{fold}"
    partial = sweep / f".{name}_f{fold}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    folder = RunFolder(partial)
    folder.trials_dir.mkdir(parents=True)
    folder.config.write_text(json.dumps(config, indent=1))
    folder.trial_record(record["variant"], 1).write_text(json.dumps(record, indent=1))
    partial.rename(final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder holding <lever>_f<K> run folders")
    parser.add_argument(
        "--levers",
        required=True,
        help="comma-separated levers whose logits are averaged, e.g. depth5,depth5_seed1 (one with --tta or --raw)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="evaluate each model on the mean of each image's and its four 1-pixel shifts",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="evaluate each run's trained weights, not the weight average it kept with --ema (at least one run kept one)",
    )
    parser.add_argument(
        "--name", help="the new lever's name (default: the levers joined by +, then _raw, _tta)"
    )
    args = parser.parse_args(argv)
    levers = [s for s in args.levers.split(",") if s]
    alone = [flag for flag, given in (("--raw", args.raw), ("--tta", args.tta)) if given]
    if len(levers) < (1 if alone else 2) or len(set(levers)) < len(levers):
        fewest = f"one or more different levers with {alone[0]}" if alone else "two or more different levers"
        parser.error(f"--levers={args.levers}: name {fewest}")
    name = args.name or default_name(levers, args.tta, args.raw)
    if not re.fullmatch(r"[\w.+-]+", name):
        parser.error(f"--name={name}: not usable as a run folder's name")
    if not args.sweep.is_dir():
        parser.error(f"{args.sweep} is not a folder")
    try:
        folds = common_folds(args.sweep, levers)
    except ValueError as e:
        parser.error(str(e))
    done = [k for k in folds if _same_ensemble(args.sweep / f"{name}_f{k}", levers, args.tta, args.raw)]
    taken = [f"{name}_f{k}" for k in folds if k not in done and (args.sweep / f"{name}_f{k}").exists()]
    if taken:
        parser.error(
            f"{args.sweep} already holds {', '.join(taken)}, not of these levers evaluated this way; "
            "choose another --name"
        )
    if done:
        print(f"folds {','.join(map(str, done))}: {name}_f<K> already written (kept)")
    folds = [k for k in folds if k not in done]
    import jaxadl  # noqa: F401  (the fast XLA:CPU flags, before JAX starts)
    from jaxadl.checkpoint import CheckpointError
    from jaxadl.data.base import DatasetError
    from jaxadl.run_folder import RunFolderError
    from jaxadl.tasks import from_record

    how = (" (trained weights)" if args.raw else "") + (" with test-time augmentation" if args.tta else "")
    print(f"mean of {', '.join(levers)}{how} on folds {','.join(map(str, folds))} -> {name}_f<K>")
    if args.tta:
        note_tta(levers, [args.sweep / f"{lever}_f{k}" for k in folds for lever in levers])
    for k in folds:
        try:
            record, config = ensemble_fold(
                [args.sweep / f"{lever}_f{k}" for lever in levers], args.tta, args.raw
            )
        except (OSError, ValueError, CheckpointError, DatasetError, RunFolderError) as e:
            parser.error(f"fold {k}: {e}")
        way = {key: True for key, given in (("ensemble_tta", args.tta), ("ensemble_raw", args.raw)) if given}
        config = {**config, "ensemble_levers": levers, **way}
        folder = write_fold(args.sweep, name, k, record, config)
        metric = from_record(record["task"]).main_metric
        print(f"fold {k}: {metric} {record['eval'][metric]['mean']:.4f} -> {folder}", flush=True)
    print(f"\npool it with the others: python -m tools.cv_summary {args.sweep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

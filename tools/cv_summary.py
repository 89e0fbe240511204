"""Pool a cross-validation sweep's runs per lever: `python -m tools.cv_summary SWEEP_DIR`.

Run folders named `<lever>_f<K>` (fold K of a `--cv-folds` sweep, e.g. experiments/sweeps/lungs_worst_cases.txt)
are grouped by lever. Segmentation: every fold's per-case F1 pooled, so each case counts once per seed:
mean, 5th percentile, minimum and the worst case. Classification: the mean over folds of the evaluated
accuracy (each fold's held-out tracks), and each lever's difference from the reference lever's
(`--reference`) paired fold by fold. Only finished trials count; a lever missing folds says so.

    python -m tools.cv_summary SWEEP_DIR --by-epoch

adds, per lever, the validation metric's mean over folds under each epoch-selection rule (the last epoch, the
epoch count chosen on the other folds, and the optimistic best epochs), read from the runs' histories;

    python -m tools.cv_summary SWEEP_DIR --record=unet_cv --machine=cpu2 --data-name=LUNGS_DIR

records each lever as a row of docs/results.json's table `unet_cv` (its flags and the command read from the
run folders' config.json; the rows of levers not in this folder stay), from which `python -m tools.docs`
writes the tables of docs/results.md and README.
A segmentation row keeps each case's F1 and fold (a classification row each fold's accuracy), so that a
later sweep pairs its levers with those recorded (the run folders need not survive), or finishes a lever
cut short (`--top-up`: the folds recorded and not in the folder are added, when the command is the same):

    python -m tools.cv_summary SWEEP_DIR --worst=8 --recorded=unet_cv
    python -m tools.cv_summary NEW_SWEEP_DIR --record=unet_cv --top-up --machine=cpu2 --data-name=LUNGS_DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import CONFIG_CLASSES, config_class

# <lever>_f<K>, K not zero-padded (the folder's name is rebuilt from K)
FOLDER = re.compile(r"^(?P<lever>.+)_f(?P<fold>0|[1-9]\d*)$")


def trials(folder: Path) -> list[dict[str, Any]]:
    """The finished trial records of a run folder, each with the UTC time its file was written."""
    from jaxadl.run_folder import RunFolder, read_record

    return [{**read_record(p), "_written": p.stat().st_mtime} for p in RunFolder(folder).trial_files()]


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
    levers: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "folds": set(),
            "cases": [],
            "fold_of": {},
            "fold_accuracy": {},
            "splits": set(),
            "written": 0.0,
            "histories": {},
        }
    )
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir()):
        match = FOLDER.match(folder.name)
        if not match:
            continue
        lever = levers[match["lever"]]  # listed even with no fold pooled
        if only is not None and int(match["fold"]) not in only:
            continue
        run_on_test = _evaluated_on_test(folder)
        try:
            lever["splits"].add(fold_split(json.loads((folder / "config.json").read_text())["cli"]))
        except (OSError, ValueError, KeyError):
            pass  # no config: pairing takes the folds as the reference's
        for record in trials(folder):
            if "failed" in record:
                continue
            on_test = record["eval_split"] == "test" if "eval_split" in record else run_on_test
            lever["folds"].add(int(match["fold"]))
            lever["written"] = max(lever["written"], record["_written"])
            lever["histories"].setdefault(int(match["fold"]), []).append(record.get("history", []))
            if "per_image" in record:
                if on_test:
                    raise ValueError(
                        f"{folder} was evaluated on its test split, not on its fold's validation cases; "
                        "run the folds with --test-fraction=0"
                    )
                per = record["per_image"]
                lever["cases"] += list(zip(per["cases"], per["f1"], strict=True))
                lever["fold_of"] |= dict.fromkeys(per["cases"], int(match["fold"]))
            else:  # with the official test split there too, the fold's figure is its validation
                acc = (
                    record["history"][record["best_epoch"] - 1]["val_accuracy"]
                    if on_test
                    else record["eval"]["accuracy"]["mean"]
                )
                lever["fold_accuracy"].setdefault(int(match["fold"]), []).append(acc)
    return dict(levers)


def per_case(lever: dict[str, Any]) -> dict[str, float]:
    """Each case's F1, the mean over the trials that scored it (a fold's run of several seeds)."""
    values: dict[str, list[float]] = defaultdict(list)
    for case, value in lever["cases"]:
        values[case].append(float(value))
    return {case: float(np.mean(v)) for case, v in values.items()}


def _evaluated_on_test(folder: Path) -> bool:
    """Whether the run evaluated its trials on a test split (results.json's eval_split) rather than on the
    fold's validation split, which is what the folds pool; for trial records older than their own
    eval_split (a run still going has no results.json yet)."""
    try:
        return json.loads((folder / "results.json").read_text()).get("eval_split") == "test"
    except (OSError, ValueError):
        return False


def case_stats(lever: dict[str, Any]) -> tuple[float, float, float, str]:
    """A segmentation lever's pooled per-case F1: mean, 5th percentile, minimum, and the lowest case's name."""
    values = np.array([v for _, v in lever["cases"]])
    worst = min(lever["cases"], key=lambda c: c[1])
    return float(values.mean()), float(np.percentile(values, 5)), float(values.min()), worst[0]


def _numbers(lever: dict[str, Any]) -> tuple[str, str]:
    """A lever's figures and its worst case or lowest fold, as docs/results.json records them."""
    if lever["cases"]:
        mean, p5, low, worst = case_stats(lever)
        return f"{mean:.4f} / {p5:.4f} / {low:.4f}", f"{len(lever['cases'])} cases; lowest {worst}"
    acc = np.array(accuracies(lever))
    return (
        f"{100 * acc.mean():.2f} %",
        f"{len(acc)} fold{'s' * (len(acc) > 1)}; lowest fold {100 * acc.min():.2f} %",
    )


def config_of(sweep: Path, lever: str, folds: set[int]) -> dict[str, Any]:
    """The saved config.json of the lever's lowest finished fold in the folder (not one topped up), its
    flags pinned to the recipe values it ran with (pinned)."""
    from jaxadl.run_folder import read_record

    here = [k for k in folds if (sweep / f"{lever}_f{k}").is_dir()]
    return pinned(read_record(sweep / f"{lever}_f{min(here or folds)}" / "config.json"))


def pinned(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with each flag left to the recipe (None) set to the value the run resolved, where today's
    recipe resolves it otherwise: a recipe default changed since (--equalize, --select) would otherwise
    make the run's command and flags read as the new default."""
    from jaxadl.run_folder import recipe_changes

    saved, experiment = config.get("resolved"), config.get("experiment")
    if not isinstance(saved, dict) or experiment not in CONFIG_CLASSES:
        return config
    cls = config_class(experiment)
    cli = dict(config["cli"])
    try:
        cfg = cls(**{k: v for k, v in cli.items() if k in {f.name for f in dataclasses.fields(cls)}})
        per = all(isinstance(v, dict) for v in saved.values())  # the CNN's: one recipe per optimizer
        now = (
            {o: dataclasses.asdict(cfg.resolved(o)) for o in saved}
            if per
            else dataclasses.asdict(cfg.resolved())
        )
    except (ValueError, TypeError, KeyError):
        return config  # a config today's CLI cannot read: as saved
    for path, _, _ in recipe_changes(saved, json.loads(json.dumps(now, default=str))):
        key = path.rpartition(".")[2]
        if cli.get(key, 0) is None:
            cli[key] = ran_with(config, key)
    return {**config, "cli": cli}


def ran_with(config: dict[str, Any], key: str) -> Any:
    """The value a saved run's recipe resolved for `key` where it took one value (else None: left to it)."""
    from jaxadl.run_folder import recipe_values

    values = {json.dumps(v) for v in recipe_values(config.get("resolved"), key)}
    return json.loads(values.pop()) if len(values) == 1 else None


def command_of(sweep: Path, lever: str, folds: set[int], data_name: str | None) -> str:
    """The lever's command as docs/results.json records it (fold K, the data path named `data_name`; for
    the mean of other levers' logits, the tools.cv_ensemble command that wrote it)."""
    config = config_of(sweep, lever, folds)
    if "ensemble_levers" in config:
        tta, raw = bool(config.get("ensemble_tta")), bool(config.get("ensemble_raw"))
        return (
            f"python -m tools.cv_ensemble {sweep.name} --levers={','.join(config['ensemble_levers'])}"
            + (" --raw" if raw else "")
            + (" --tta" if tta else "")
            + (f" --name={lever}" if lever != default_name(config["ensemble_levers"], tta, raw) else "")
        )
    return f"python -m experiments.{config['experiment']} " + " ".join(
        flags(config["cli"], {}, config["experiment"], data_name)
    )


def default_name(levers: list[str], tta: bool, raw: bool) -> str:
    """The lever's name unless --name gives one: the levers joined by +, then _raw and _tta as evaluated."""
    return "+".join(levers) + ("_raw" if raw else "") + ("_tta" if tta else "")


def ensemble_text(levers: list[str], tta: bool, raw: bool = False) -> str:
    """How docs/results.json describes a tools.cv_ensemble lever."""
    weights = "trained weights, not a weight average"
    if len(levers) == 1:
        return (
            f"{levers[0]}'s {weights}" + (", with `--tta`" if tta else "")
            if raw
            else f"{levers[0]} evaluated with `--tta`"
        )
    each = [f"each with its {weights}"] * raw + ["each with `--tta`"] * tta
    return "the mean of the logits of " + " and ".join(levers) + "".join(f", {e}" for e in each)


def flags(cli: dict[str, Any], against: dict[str, Any], experiment: str, data_name: str | None) -> list[str]:
    """The command-line flags that turn the config `against` into `cli` (`--cv-fold` shown as K; `--out`,
    `--resume` and the other options of how a run was carried out left out); the data path, when named,
    written as `data_name`."""
    from experiments.cli import argv_for
    from jaxadl.experiment import RUN_ONLY_KEYS

    config = config_class(experiment)
    cli, against = ({k: v for k, v in d.items() if k not in RUN_ONLY_KEYS} for d in (cli, against))
    out = [f for f in argv_for(config, cli, against) if not f.startswith("--cv-fold=")]
    if cli.get("cv_folds"):
        at = next((i + 1 for i, f in enumerate(out) if f.startswith("--cv-folds=")), len(out))
        out.insert(at, "--cv-fold=K")
    if data_name:
        for i, f in enumerate(out):
            flag, _, text = f.partition("=")
            if flag in ("--dataset", "--data-dir") and "/" in text:
                out[i] = f"{flag}=" + (text.split(":", 1)[0] + ":" if ":" in text else "") + data_name
    return out


def explicit(config: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """The run's CLI values with each one left to the recipe (None) that `other` sets given as the value
    the run's recipe resolved: sgd (equalize left to the recipe, off) against a reference run with
    `--equalize` reads `--no-equalize`, not nothing."""
    cli = dict(config["cli"])
    for key, value in cli.items():
        if value is None and other.get(key) is not None:
            cli[key] = ran_with(config, key)
    return cli


def reference_cli(row: dict[str, Any], like: dict[str, Any], data_name: str | None) -> dict[str, Any]:
    """The reference lever's CLI values read back from its recorded command (its data path: the one `like`
    was run on), for a sweep folder that does not hold the reference's runs."""
    from experiments.cli import parser_for, raising

    words = shlex.split(row["command"])
    experiment = words[2].removeprefix("experiments.") if len(words) > 2 else ""
    if experiment not in CONFIG_CLASSES:
        raise ValueError(
            f"the reference {row['variant']}'s recorded command is not an experiment's run: {row['command']}"
        )
    config = config_class(experiment)
    argv = [w.replace("--cv-fold=K", "--cv-fold=0") for w in words[3:]]
    try:
        cli = vars(raising(lambda: parser_for(config, "").parse_args(argv)))
    except ValueError as e:
        raise ValueError(
            f"the reference {row['variant']}'s recorded command no longer parses ({e}): {row['command']}"
        ) from None
    for key in ("dataset", "data_dir"):
        if data_name and data_name in str(cli.get(key)):
            cli[key] = like.get(key)
    return cli


def records(
    sweep: Path,
    levers: dict[str, dict[str, Any]],
    machine: str,
    reference: str,
    data_name: str | None,
    recorded: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """docs/results.json rows, one per lever with a finished fold: flags against the reference lever,
    pooled figures, the command (fold K), the day its last fold finished (UTC) and machine. The rows
    `recorded` before stay, but for the levers found again; the reference, when the folder lacks it, is
    read from its recorded row."""
    finished = {name: lever for name, lever in levers.items() if lever["folds"]}
    if not finished:
        raise ValueError("no finished fold of any lever")
    kept = {r["variant"]: r for r in recorded or [] if r["variant"] not in finished}
    if reference in finished:
        base = config_of(sweep, reference, finished[reference]["folds"])
        experiment, base_cli = base["experiment"], base["cli"]
    elif reference in kept:
        some = next(iter(finished))
        like = config_of(sweep, some, finished[some]["folds"])
        experiment, base_cli = like["experiment"], reference_cli(kept[reference], like["cli"], data_name)
        base = {"cli": base_cli}
    else:
        raise ValueError(f"no finished fold of the reference lever {reference!r}, nor a recorded row of it")
    ref_folds = (
        fold_means(finished[reference])
        if reference in finished
        else {int(k): v for k, v in kept[reference].get("fold_accuracy", {}).items()}
    )
    rows = []
    for name, lever in finished.items():
        config = config_of(sweep, name, lever["folds"])
        figures, detail = _numbers(lever)
        if lever["fold_accuracy"] and name != reference and ref_folds:
            splits = ({fold_split(config["cli"])}, {fold_split(base_cli)})
            detail += f"; {against(fold_means(lever), ref_folds, reference, splits)}"
        cli, than = explicit(config, base_cli), explicit(base, config["cli"])
        own = [f for f in flags(cli, than, experiment, data_name) if not f.startswith("--cv-fold=")]
        if (cli.get("select") or ran_with(config, "select")) == "last":  # validation's cadence kept nothing
            own = [f for f in own if not f.startswith("--val-every=")]  # (the command column keeps it)
        original = " ".join(f"`{f}`" for f in own) or "none (the reference)"
        if "ensemble_levers" in config:
            original = ensemble_text(
                config["ensemble_levers"], bool(config.get("ensemble_tta")), bool(config.get("ensemble_raw"))
            )
        rows.append(
            {
                "variant": name,
                "original": original,
                "value": figures,
                "detail": f"{detail}; folds {','.join(map(str, sorted(lever['folds'])))}",
                "command": command_of(sweep, name, lever["folds"], data_name),
                "date": datetime.datetime.fromtimestamp(lever["written"], datetime.UTC).date().isoformat(),
                "machine": machine,
                "source": f"python -m tools.cv_summary {sweep.name}",
            }
        )
        if lever["fold_accuracy"]:  # so a later sweep's levers pair with this one's folds
            rows[-1]["fold_accuracy"] = {str(k): round(v, 6) for k, v in fold_means(lever).items()}
        if lever["cases"]:  # each case's F1 and fold, so a later sweep can pair with or top up these cases
            rows[-1]["cases"] = {case: round(v, 6) for case, v in sorted(per_case(lever).items())}
            rows[-1]["case_folds"] = {
                str(k): sorted(c for c, f in lever["fold_of"].items() if f == k)
                for k in sorted(lever["folds"])
            }
    return sorted([*rows, *kept.values()], key=lambda r: r["variant"])


def top_up(
    sweep: Path, levers: dict[str, dict[str, Any]], rows: list[dict[str, Any]], data_name: str | None
) -> list[str]:
    """Add to each lever of the folder the folds its recorded row holds and the folder lacks (a sweep cut
    short, finished from another folder), when the row's command is the lever's; what was done, in words."""
    said = []
    recorded = {r["variant"]: r for r in rows}
    for name, lever in levers.items():
        row = recorded.get(name)
        if not lever["folds"] or row is None:
            continue
        kept = "case_folds" if lever["cases"] else "fold_accuracy"  # segmentation: each case; else each fold
        if not row.get(kept):
            what = "which fold each case came from" if lever["cases"] else "each fold's accuracy"
            said.append(f"{name}: its recorded row does not say {what}; not topped up")
            continue
        command = command_of(sweep, name, lever["folds"], data_name)
        if row["command"] != command:
            said.append(f"{name}: recorded as `{row['command']}`, run here as `{command}`; not topped up")
            continue
        added = sorted(int(k) for k in row[kept] if int(k) not in lever["folds"])
        for k in added:
            if lever["cases"]:
                cases = row["case_folds"][str(k)]
                lever["cases"] += [(c, row["cases"][c]) for c in cases]
                lever["fold_of"] |= dict.fromkeys(cases, k)
            else:
                lever["fold_accuracy"][k] = [row["fold_accuracy"][str(k)]]
        lever["folds"] |= set(added)
        day = datetime.datetime.fromisoformat(row["date"]).replace(tzinfo=datetime.UTC).timestamp()
        lever["written"] = max(lever["written"], day) if added else lever["written"]
        said.append(f"{name}: folds {','.join(map(str, added)) or 'none'} added from its recorded row")
    return said


def recorded_levers(rows: list[dict[str, Any]], have: set[str]) -> dict[str, dict[str, Any]]:
    """The levers of recorded rows that kept each case's F1, but for those in `have`, as pool() gives them
    (their folds unknown: only --worst reads them)."""
    return {
        r["variant"]: {
            "folds": set(),
            "cases": list(r["cases"].items()),
            "fold_accuracy": {},
            "histories": {},
        }
        for r in rows
        if r.get("cases") and r["variant"] not in have
    }


def accuracies(lever: dict[str, Any]) -> list[float]:
    """A classification lever's accuracies, each trial of each fold, in fold order."""
    return [a for _, runs in sorted(lever.get("fold_accuracy", {}).items()) for a in runs]


def fold_means(lever: dict[str, Any]) -> dict[int, float]:
    """A classification lever's accuracy per fold (its trials averaged)."""
    return {k: float(np.mean(v)) for k, v in sorted(lever.get("fold_accuracy", {}).items())}


def fold_split(cli: dict[str, Any]) -> tuple[Any, Any]:
    """What decides which cases fold K holds: the number of folds and the seed that deals them."""
    return cli.get("cv_folds"), cli.get("split_seed", 0)


def against(
    own: dict[int, float], reference: dict[int, float], name: str, splits: tuple[set, set] = (set(), set())
) -> str:
    """A lever's accuracy paired fold by fold with the reference's on the folds both finished: the folds
    differ more than most levers do (the GTSRB track folds by 0.6 points), so the pairing is the comparison.
    `splits`: each one's (--cv-folds, --split-seed) where known; folds dealt otherwise are not paired."""
    if all(splits) and splits[0] != splits[1]:
        return (
            f"not paired with {name}: other folds (--cv-folds, --split-seed {sorted(splits[0] | splits[1])})"
        )
    common = sorted(set(own) & set(reference))
    if not common:
        return f"no fold in common with {name}"
    diffs = np.array([own[k] - reference[k] for k in common])
    return (
        f"against {name} on folds {','.join(map(str, common))}: {100 * diffs.mean():+.2f} points "
        f"(higher on {int((diffs > 0).sum())} of {len(common)})"
    )


def row(name: str, lever: dict[str, Any], reference: tuple[str, dict[str, Any]] | None = None) -> str:
    """One markdown row: lever, folds, cases, mean, 5th percentile, minimum, worst case (or accuracy, lowest
    fold and, given the reference's fold accuracies, the pairing with them)."""
    folds = ",".join(str(k) for k in sorted(lever["folds"]))
    if not lever["cases"] and not lever["fold_accuracy"]:
        return f"| {name} | none finished |"
    if lever["cases"]:
        mean, p5, low, worst = case_stats(lever)
        return f"| {name} | {folds} | {len(lever['cases'])} | {mean:.4f} | {p5:.4f} | {low:.4f} | {worst} |"
    acc = np.array(accuracies(lever))
    line = f"| {name} | {folds} | {len(acc)} runs | {100 * acc.mean():.2f} % | {100 * acc.min():.2f} % |"
    if reference:
        ref_name, ref = reference
        pairing = against(fold_means(lever), fold_means(ref), ref_name, (lever["splits"], ref["splits"]))
        line += " — |" if name == ref_name else f" {pairing} |"
    return line


def validation_curves(lever: dict[str, Any]) -> tuple[list[int], np.ndarray]:
    """The epochs every fold validated and [folds, those epochs]: each fold's validation metric (F1 or
    accuracy), its trials averaged; the folds cut to the shortest history. Folds run with different
    --val-every keep only the epochs they share."""
    curves = []
    for fold in sorted(lever["histories"]):
        runs = [[e.get("val_f1", e.get("val_accuracy")) for e in h] for h in lever["histories"][fold] if h]
        if not runs or any(all(v is None for v in r) for r in runs):
            raise ValueError(f"fold {fold} has no validation history")
        n = min(map(len, runs))
        curves.append(
            [None if None in col else float(np.mean(col)) for col in zip(*(r[:n] for r in runs), strict=True)]
        )
    if not curves:
        raise ValueError("no finished fold")
    n = min(map(len, curves))
    shared = [e for e in range(n) if all(c[e] is not None for c in curves)]
    if not shared:
        raise ValueError("no epoch was validated on every fold and trial (--val-every)")
    return [e + 1 for e in shared], np.array([[c[e] for e in shared] for c in curves])


def epoch_rules(epochs: list[int], curves: np.ndarray) -> dict[str, tuple[float, str]]:
    """The validation metric's mean over folds under each way of choosing among the validated `epochs`,
    with what it chose: the last; the epoch count chosen on the other folds (honest); and two chosen on the
    scored folds themselves (optimistic): the best fixed epoch for all folds, and each fold's own best."""
    folds = curves.shape[0]
    mean = curves.mean(0)
    fixed = int(mean.argmax())
    rules = {"last epoch": (float(mean[-1]), f"epoch {epochs[-1]}")}
    if folds > 1:
        chosen = [int(np.delete(curves, f, 0).mean(0).argmax()) for f in range(folds)]
        honest = float(np.mean([curves[f, e] for f, e in enumerate(chosen)]))
        rules["epoch chosen on the other folds"] = (
            honest,
            "epochs " + ",".join(str(epochs[e]) for e in chosen),
        )
    rules["best fixed epoch (optimistic)"] = (float(mean[fixed]), f"epoch {epochs[fixed]}")
    own = curves.argmax(1)
    rules["each fold's best epoch (optimistic)"] = (
        float(curves.max(1).mean()),
        "epochs " + ",".join(str(epochs[e]) for e in own),
    )
    return rules


def worst_cases(levers: dict[str, dict[str, Any]], n: int, reference: str) -> str:
    """A markdown table of the reference lever's n lowest cases with every lever's F1 on each (paired)."""
    scores = {name: per_case(lever) for name, lever in levers.items() if lever["cases"]}
    if reference not in scores:
        raise ValueError(f"no finished segmentation fold of the reference lever {reference!r}")
    names = [reference, *sorted(set(scores) - {reference})]
    out = ["| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for case in sorted(scores[reference], key=scores[reference].get)[:n]:
        cells = [f"{scores[k][case]:.4f}" if case in scores[k] else "" for k in names]
        out.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder holding <lever>_f<K> run folders")
    parser.add_argument(
        "--common-folds",
        action="store_true",
        help="pool only the folds every lever with a finished run has finished (a fair comparison while the "
        "sweep runs)",
    )
    parser.add_argument(
        "--worst",
        type=int,
        default=0,
        help="then the reference lever's N lowest cases, every lever's F1 on each",
    )
    parser.add_argument(
        "--recorded",
        metavar="TABLE",
        help="with --worst: pair also the levers recorded in this table of docs/results.json that the folder "
        "lacks (from each case's F1 kept there), the reference among them",
    )
    parser.add_argument(
        "--reference",
        default="default",
        help="the lever --worst ranks cases by, --record diffs flags against and classification levers are "
        "paired with fold by fold",
    )
    parser.add_argument(
        "--by-epoch",
        action="store_true",
        help="then, per lever, the mean over folds of the validation metric under each epoch-selection rule",
    )
    parser.add_argument(
        "--record", metavar="TABLE", help="write the levers as the rows of this table of docs/results.json"
    )
    parser.add_argument(
        "--top-up",
        action="store_true",
        help="with --record: add to a lever the folds its recorded row holds and this folder lacks (same "
        "command), so a sweep cut short can be finished from a new folder",
    )
    parser.add_argument("--machine", help="with --record: the key in docs/results.json's machines")
    parser.add_argument(
        "--data-name", help="with --record: how the commands name the data path (e.g. LUNGS_DIR)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        parser.error(f"{args.sweep} is not a folder")
    if args.worst < 0:
        parser.error(f"--worst={args.worst}: the number of cases, 1 or more (0: none)")
    for flag, given, other, with_it in (
        ("--recorded", args.recorded, "--worst", args.worst),
        ("--machine", args.machine, "--record", args.record),
        ("--data-name", args.data_name, "--record", args.record),
    ):
        if given and not with_it:
            parser.error(f"{flag}={given}: only with {other}")
    if args.record and not args.machine:
        parser.error("--record needs --machine=KEY (a key of docs/results.json's machines)")
    only = None
    if args.common_folds:
        # a lever with no finished run yet is listed, not waited on
        started = [folds for folds in finished_folds(args.sweep).values() if folds]
        only = set.intersection(*started or [set()])
        if not only:
            parser.error(f"{args.sweep}: no fold is finished by every lever yet")
        print(f"folds every lever with a finished run finished: {','.join(map(str, sorted(only)))}\n")
    try:
        levers = pool(args.sweep, only)
    except ValueError as e:
        parser.error(str(e))
    if not any(lever["folds"] for lever in levers.values()):
        parser.error(f"{args.sweep} holds no finished run folders named <lever>_f<K>")
    if args.top_up:
        if not args.record or args.common_folds:
            parser.error("--top-up: only with --record, and not with --common-folds")
        from tools import docs

        table = docs.load_results()["tables"].get(args.record, {"rows": []})
        try:
            for line in top_up(args.sweep, levers, table["rows"], args.data_name):
                print(f"top-up: {line}")
        except (OSError, ValueError) as e:
            parser.error(f"--top-up: {e}")
    _print_table(levers, args.reference)
    if args.worst:
        _print_worst(parser, args, levers)
    if args.by_epoch:
        _print_by_epoch(levers)
    if args.record:
        _record(parser, args, levers)
    return 0


def _print_table(levers: dict[str, dict[str, Any]], reference_name: str) -> None:
    """One row per lever: F1 statistics over the cases (lungs) or accuracy over the folds (signs)."""
    segmentation = any(lever["cases"] for lever in levers.values())
    reference = None
    if segmentation:
        print(
            "| lever | folds | cases | mean F1 | 5th percentile | min | worst case |\n|---|---|---|---|---|---|---|"
        )
    else:
        ref = levers.get(reference_name)
        if ref and ref["fold_accuracy"]:
            reference = (reference_name, ref)
            print(
                f"| lever | folds | runs | mean accuracy over folds | lowest fold | paired with {reference_name} |"
                "\n|---|---|---|---|---|---|"
            )
        else:
            print("| lever | folds | runs | mean accuracy over folds | lowest fold |\n|---|---|---|---|---|")
    for name, lever in levers.items():
        print(row(name, lever, None if segmentation else reference))


def _print_worst(
    parser: argparse.ArgumentParser, args: argparse.Namespace, levers: dict[str, dict[str, Any]]
) -> None:
    """--worst: the reference's lowest cases, every lever's F1 on each."""
    paired = dict(levers)
    if args.recorded:
        from tools import docs

        table = docs.load_results()["tables"].get(args.recorded)
        if table is None:
            parser.error(f"--recorded={args.recorded}: docs/results.json has no such table")
        paired |= recorded_levers(table["rows"], set(levers))
    try:
        print("\n" + worst_cases(paired, args.worst, args.reference))
    except ValueError as e:
        parser.error(f"--reference={args.reference}: {e}")


def _print_by_epoch(levers: dict[str, dict[str, Any]]) -> None:
    """--by-epoch: per lever, the mean over folds under each epoch-selection rule."""
    print("\n| lever | rule | mean validation metric over folds | chosen |\n|---|---|---|---|")
    for name, lever in levers.items():
        try:
            rules = epoch_rules(*validation_curves(lever))
        except ValueError as e:
            print(f"| {name} | {e} | | |")
            continue
        for rule, (value, chosen) in rules.items():
            print(f"| {name} | {rule} | {value:.4f} | {chosen} |")


def _record(
    parser: argparse.ArgumentParser, args: argparse.Namespace, levers: dict[str, dict[str, Any]]
) -> None:
    """--record: write the levers as rows of a table of docs/results.json."""
    from tools import docs

    results = docs.load_results()
    if args.machine not in results["machines"]:
        parser.error(f"--machine={args.machine}: not one of {', '.join(results['machines'])}")
    if args.record not in results["tables"]:
        parser.error(f"--record={args.record}: docs/results.json has no such table")
    try:
        table = results["tables"][args.record]
        rows = records(args.sweep, levers, args.machine, args.reference, args.data_name, table["rows"])
    except (OSError, ValueError) as e:
        parser.error(f"--record: {e}")
    found = sum(bool(lever["folds"]) for lever in levers.values())
    table["rows"] = rows
    docs.save_results(results)
    print(f"\nrecorded {found} levers in {docs.RESULTS.name}'s table {args.record}; kept {len(rows) - found}")


if __name__ == "__main__":
    sys.exit(main())

"""Variants x trials -> a run folder: config.json, metrics.jsonl, results.json, results.md and plots.

Both command-line experiments (experiments/cnn.py, experiments/unet.py) are thin wrappers around
`run_experiment`; a notebook can call it the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxadl import plots
from jaxadl.data.base import Dataset
from jaxadl.metrics import summarize
from jaxadl.parallel import broadcast_text, is_main_process, make_mesh, on_main_first
from jaxadl.progress import format_seconds
from jaxadl.report import by_variant
from jaxadl.run_folder import RunFolder
from jaxadl.tasks import Evaluation, Task, ensemble_label, from_record
from jaxadl.train import (
    DivergenceError,
    Evaluator,
    TrainConfig,
    Trainer,
    check_batch_size,
    evaluation_state,
    fit,
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row group of the report's tables: a model and recipe, trained `trials` times (seeds seed+i)."""

    name: str
    model: nn.Module
    task: Task
    train: TrainConfig
    trials: int = 1


class RunFolderError(Exception):
    """The output folder holds another experiment's run; the message names it."""


def environment() -> dict[str, Any]:
    """Library versions and the device, recorded in results.json."""
    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    dev = jax.devices()[0]
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


_RUN_ONLY_KEYS = ("resume", "overwrite", "out", "eval_only", "from_run")


def check_out_folder(out: str | Path) -> None:
    """RunFolderError when `out`, or a folder above it, is a file: no run folder can be made there."""
    out = Path(out)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = f"--out {out}" if blocker == out else f"--out {out}: {blocker}"
        raise RunFolderError(f"{what} is a file, not a folder; choose another --out")


def prepare_folder(
    out: str | Path, experiment: str, config: dict[str, Any], resume: bool = False, overwrite: bool = False
) -> Path:
    """Create the run folder. Refuse one holding another experiment's run, or (unless resuming with the
    same options, or overwriting) one that already holds a run."""
    check_out_folder(out)
    folder = RunFolder(out)
    out, cfg_path = folder.root, folder.config
    if cfg_path.exists():
        try:
            previous = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise RunFolderError(f"{cfg_path} exists but cannot be read ({e}); choose another --out") from e
        if previous.get("experiment") != experiment:
            raise RunFolderError(
                f"{out} holds a {previous.get('experiment')!r} run, not {experiment!r}; choose another --out"
            )
        if resume:
            old = {k: v for k, v in previous.get("cli", {}).items() if k not in _RUN_ONLY_KEYS}
            new = {k: v for k, v in config.get("cli", {}).items() if k not in _RUN_ONLY_KEYS}
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                raise RunFolderError(
                    f"--resume: {out} was run with other options ({', '.join(diff)}); resume with the same "
                    "options or choose another --out"
                )
        elif not overwrite:
            raise RunFolderError(
                f"{out} already holds a {experiment} run; pass --resume to continue it, "
                "--overwrite to replace it, or choose another --out"
            )
        elif overwrite:
            for sub in (folder.checkpoints_dir, folder.trials_dir):
                if sub.exists():
                    shutil.rmtree(sub)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file, so that a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def run_experiment(
    experiment: str,
    data: Dataset,
    variants: list[Variant],
    out: str | Path,
    config: dict[str, Any],
    *,
    log: Callable[[str], None] = print,
    resume: bool = False,
    overwrite: bool = False,
    keep: int = 2,
    devices: int | None = None,
) -> dict[str, Any]:
    """Train every variant's trials on `data`, evaluate on test (val when there is no test set), write all.

    Each trial checkpoints every epoch under checkpoints/<variant>_trialN/ and, when done, writes
    trials/<variant>_trialN.json; `resume` skips finished trials and continues unfinished ones.
    """
    mesh = make_mesh(devices)
    for variant in variants:  # fail before any training when a batch does not fit the data or devices
        if not variant.train.full_batch:
            check_batch_size(variant.train.batch_size, len(data.train), mesh)
    eval_split, eval_data = _eval_split(data)
    folder = RunFolder(out)

    def start_folder() -> None:  # process 0 alone writes the run folder; all take part in checkpoints
        prepare_folder(folder.root, experiment, config, resume=resume, overwrite=overwrite)
        tasks = {v.name: v.task.to_record() for v in variants}  # what each variant's metrics mean
        _write_json(folder.config, {"experiment": experiment, **config, "tasks": tasks})
        if not resume or not folder.metrics.exists():
            folder.metrics.write_text("")

    on_main_first(start_folder, others=False)
    log(plan(variants, data, eval_split, folder.root, mesh.devices.size))
    trials = _run_trials(variants, data, eval_split, eval_data, folder, log, resume, keep, mesh)
    cases = _case_names(data, eval_split, len(eval_data))
    together = []  # several processes would each restore every trial: there, --eval-only (one process) does it
    if keep and jax.process_count() == 1:
        together = ensembles(folder.root, trials, eval_data, cases, eval_split, log, figure="example")
    results = {
        "experiment": experiment,
        "dataset": data.name,
        "dataset_meta": data.meta,
        "eval_split": eval_split,
        "devices": int(mesh.devices.size),  # the data-parallel mesh the run trained on (--devices)
        "trials": trials,
        "ensembles": together,
        "environment": environment(),
    }
    if is_main_process():
        _write_results(experiment, data, variants, config, eval_split, eval_data, folder, results, log)
    return results


def _eval_split(data: Dataset) -> tuple[str, Any]:
    """The split a run is evaluated on: test, else val."""
    if data.test is not None:
        return "test", data.test
    if data.val is None:
        raise ValueError("the dataset has neither a test nor a validation split to evaluate on")
    return "val", data.val


def _run_trials(
    variants, data, eval_split, eval_data, folder, log, resume, keep, mesh
) -> list[dict[str, Any]]:
    """Every variant's trials in order: trained, or (resuming) taken from a finished trial's record."""
    main = is_main_process()
    total_trials, trial_seconds = sum(v.trials for v in variants), []
    trials: list[dict[str, Any]] = []
    for variant in variants:
        for trial in range(1, variant.trials + 1):
            left = total_trials - len(trials)
            eta = f"; ~{format_seconds(np.mean(trial_seconds) * left)} left" if trial_seconds else ""
            log(
                f"== {variant.name} trial {trial} ({len(trials) + 1} of {total_trials} in this run{eta}): "
                f"{len(data.train)} train / {len(data.val) if data.val is not None else 0} val / "
                f"{len(eval_data)} {eval_split} =="
            )
            done = folder.trial_record(variant.name, trial)
            finished = broadcast_text(done.read_text() if main and resume and done.exists() else "")
            if finished:  # process 0's reading, so every process skips the same trials
                log(f"   finished before; taken from {done}")
                trials.append(json.loads(finished))
                continue
            cfg = dataclasses.replace(variant.train, seed=variant.train.seed + trial - 1)
            record = _run_trial(
                variant, cfg, trial, data, eval_split, eval_data, folder, log, resume, keep, mesh
            )
            if main:
                done.parent.mkdir(exist_ok=True)
                _write_json(done, record)
            trials.append(record)
            if "train_seconds" in record:
                trial_seconds.append(record["train_seconds"] + record["compile_seconds"])
    return trials


def _write_results(experiment, data, variants, config, eval_split, eval_data, folder, results, log) -> None:
    """The variants figure, results.json and results.md (the first variant's task's table)."""
    panels = _variant_panels(variants, results["trials"])
    if panels:
        plots.overlay(panels, f"{experiment}: variants", folder.variants_plot)
    _write_json(folder.results_json, results)
    table = variants[0].task.table(results["trials"], eval_split, results["ensembles"])
    recipe = f"Recipe: {config['recipe']} (resolved values in config.json). " if config.get("recipe") else ""
    folder.results_md.write_text(
        f"# {experiment} on {data.name}\n\n{recipe}Evaluated on the {eval_split} split "
        f"({len(eval_data)} examples); the selected epoch is the one evaluated.\n\n{table}\n"
    )
    log("\n" + table)
    log(f"\nwrote {folder.root}/results.md, results.json, metrics.jsonl and plots")


def _variant_panels(
    variants: list[Variant], trials: list[dict[str, Any]]
) -> dict[str, dict[str, list[np.ndarray]]]:
    """The curves of the variants figure: training objective and validation metric per epoch, per trial."""
    metric = variants[0].task.main_metric
    objectives = {v.task.objective_name for v in variants}  # named on the axis when the variants share it
    objective = f" ({objectives.pop()})" if len(objectives) == 1 else ""
    panels: dict[str, dict[str, list[np.ndarray]]] = {
        f"training objective{objective}, epoch mean": {},
        f"val {metric}": {},
    }
    for t in trials:
        for curves, key in zip(panels.values(), ("train_loss", f"val_{metric}"), strict=True):
            rows = [r[key] for r in t.get("history", []) if key in r]
            curves.setdefault(t["variant"], []).append(np.asarray(rows))
    return {k: c for k, c in panels.items() if any(len(r) for runs in c.values() for r in runs)}


def plan(variants: list[Variant], data: Dataset, eval_split: str, out: Path, devices: int) -> str:
    """What a run is about to do, printed before the first compile: variants, trials, epochs, steps."""
    lines = [f"plan: {sum(v.trials for v in variants)} trial(s) on {devices} device(s), writing {out}"]
    if cv := data.meta.get("cross_validation"):
        lines.append(
            f"  validating on fold {cv['fold']} of {cv['folds']} (0..{cv['folds'] - 1}, seed {cv['seed']}) "
            f"of the {len(data.train) + len(data.val)} train + val cases"
        )
    for v in variants:
        c = v.train
        steps = 1 if c.full_batch else len(data.train) // c.batch_size
        batch = "the whole training set" if c.full_batch else f"batches of {c.batch_size}"
        lines.append(
            f"  {v.name}: {v.trials} trial(s) x {c.epochs} epochs x {steps} steps ({batch}), "
            f"{c.optim.name} lr {c.optim.lr:g} {c.optim.schedule}, keeps the {c.select} epoch, "
            f"evaluated on {eval_split}"
        )
    return "\n".join(lines)


def _not_learned_note(
    cfg: TrainConfig, steps_per_epoch: int, metric: str, value: float, chance: float
) -> str:
    """A note when the evaluated model is no better than chance (a run too short for its schedule)."""
    if value > chance:
        return ""
    steps = steps_per_epoch * cfg.epochs
    warm = (
        f", {max(round(cfg.optim.warmup_fraction * steps), 1)} of them warming the learning rate up"
        if cfg.optim.schedule != "constant"
        else ""
    )
    return (
        f"  note: {metric} {value:.4f} is no better than chance ({chance:.4f}): the model has not learned yet after "
        f"{steps} optimizer steps{warm}. Train longer (--epochs) before reading anything into it."
    )


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The model's class and constructor fields, enough to rebuild it (see jaxadl.predict)."""
    fields = {
        f.name: getattr(model, f.name)
        for f in dataclasses.fields(model)
        if f.name not in ("parent", "name", "dtype")
    }
    return {"class": type(model).__name__, **fields}


def _run_trial(
    variant, cfg, trial, data, eval_split, eval_data, folder, log, resume=False, keep=2, mesh=None
) -> dict[str, Any]:
    """Train one trial, evaluate it with its task, draw its figures; the trial's record."""
    task = variant.task
    trainer = Trainer(variant.model, task, cfg, len(data.train), mesh=mesh)
    checkpoints = folder.checkpoints(variant.name, trial)

    def on_epoch(rec: dict[str, float]) -> None:
        if is_main_process():
            with folder.metrics.open("a") as f:
                f.write(json.dumps({"variant": variant.name, "trial": trial, **rec}) + "\n")

    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "variant": variant.name,
        "trial": trial,
        "seed": cfg.seed,
        "train_config": dataclasses.asdict(cfg),
        "model_spec": model_spec(variant.model),
        "task": task.to_record(),
        "checkpoints": checkpoints.relative_to(folder.root).as_posix(),
        "input_shape": list(data.train.images.shape[1:]),
        **task.record_fields(data.meta),
    }
    try:
        result = fit(
            variant.model,
            task,
            data.train,
            cfg,
            data.val,
            on_epoch=on_epoch,
            trainer=trainer,
            checkpoint_dir=checkpoints if keep else None,
            keep=keep,
            resume=resume,
            verbose=True,
            log=log,
        )
    except DivergenceError as e:
        log(
            f"  {variant.name} trial {trial} stopped: {e}; its last good checkpoint is kept; "
            "going on with the next trial"
        )
        record.update(failed=str(e), failed_step=e.step)
        return record
    log(f"  compiled in {result.compile_seconds:.1f}s (not counted in epoch times)")
    evaluation = task.evaluate(
        trainer, result.state, eval_data, _case_names(data, eval_split, len(eval_data))
    )
    record.update(evaluation.record)
    _report_trial(variant, cfg, trainer, result, eval_split, eval_data, record, evaluation, log, t0)
    if is_main_process():
        _trial_figures(variant, trial, trainer, result, eval_split, eval_data, evaluation, folder)
    return record


def _summary(evaluation: Evaluation) -> dict[str, dict[str, float]]:
    """Mean, std, min, max and count of each per-example metric: a trial's `eval`, in a run and re-evaluated."""
    return {k: summarize(v) for k, v in evaluation.per_example.items()}


def _report_trial(variant, cfg, trainer, result, eval_split, eval_data, record, evaluation, log, t0) -> None:
    """Add the evaluation's summary and the training history to the record; log the main metric."""
    task, metric = variant.task, variant.task.main_metric
    summary = _summary(evaluation)
    val_key = f"val_{metric}"
    best_val = max((r[val_key] for r in result.history if val_key in r), default=None)
    record.update(
        eval=summary,
        history=result.history,
        best_epoch=result.best_epoch,
        best_val=best_val,
        epochs_run=len(result.history),
        compile_seconds=result.compile_seconds,
        train_seconds=time.perf_counter() - t0 - result.compile_seconds,
    )
    note = task.summary_note(summary)
    log(f"  {eval_split} {metric}: {summary[metric]['mean']:.4f}{note}; selected epoch {result.best_epoch}")
    chance = task.chance_level(eval_data.labels)
    note = _not_learned_note(cfg, trainer.steps_per_epoch, metric, summary[metric]["mean"], chance)
    if note:
        log(note)


def _trial_figures(variant, trial, trainer, result, eval_split, eval_data, evaluation, folder) -> None:
    """A trial's figures: training loss per step, train/val history, and the task's example."""
    task, title = variant.task, f"{variant.name}, trial {trial}"
    plots.loss_curve(
        result.step_losses,
        trainer.steps_per_epoch,
        f"{title}: training loss",
        folder.plot(variant.name, trial, "loss"),
    )
    plots.history(
        result.history,
        task.main_metric,
        title,
        folder.plot(variant.name, trial, "history"),
        loss_name=task.eval_loss_name,
        objective_name=task.objective_name,
    )
    task.example_figure(eval_data, eval_split, evaluation, title, folder.plot(variant.name, trial, "example"))


def _case_names(data: Dataset, split: str, n: int) -> list[str]:
    """Names of the split's cases from the dataset's meta (file stems), else their indices."""
    names = (data.meta.get("cases") or {}).get(split) if isinstance(data.meta, dict) else None
    return [str(c) for c in names] if names is not None and len(names) == n else [str(i) for i in range(n)]


def evaluate_run(run_dir: str | Path, data: Dataset, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Re-evaluate every finished trial of a run folder on `data`'s test split (else val), without training.

    Writes eval.json, eval.md and, where the task draws one, each trial's and average's example figure
    (plots/*_eval_example.png, beside the training run's own) into the run folder; returns the same dict.
    """
    folder = RunFolder(run_dir)
    run_dir = folder.root
    split, eval_data = _eval_split(data)
    records = folder.trial_records()
    if not records:
        raise RunFolderError(f"{run_dir} holds no finished trials to evaluate (no trials/*.json)")
    cases = _case_names(data, split, len(eval_data))
    trials, drawn = [], False
    for rec in records:
        if rec.get("failed"):
            trials.append(rec)
            continue
        record, task, evaluation = _evaluate_trial(run_dir, rec, eval_data, cases)
        trials.append(record)
        title = f"{rec['variant']}, trial {rec['trial']} (re-evaluated)"
        path = folder.plot(rec["variant"], rec["trial"], "eval_example")
        drawn |= task.example_figure(eval_data, split, evaluation, title, path) is not None
        metric = task.main_metric
        log(
            f"{rec['variant']} trial {rec['trial']}: {split} {metric} {trials[-1]['eval'][metric]['mean']:.4f}"
        )
    together = ensembles(run_dir, trials, eval_data, cases, split, log, figure="eval_example")
    table = from_record(records[0]["task"]).table(trials, split, together)
    results = {
        "run": str(run_dir),
        "dataset": data.name,
        "eval_split": split,
        "trials": trials,
        "ensembles": together,
    }
    _write_json(folder.eval_json, results)
    folder.eval_md.write_text(f"# re-evaluation of {run_dir} on {data.name} ({split})\n\n{table}\n")
    log("\n" + table)
    figures = f", figures {folder.root / 'plots'}/*_eval_example.png" if drawn else ""
    log(f"\nwrote {folder.eval_json} and {folder.eval_md}{figures}")
    return results


def ensembles(
    run_dir: str | Path,
    trials: list[dict[str, Any]],
    split: Any,
    cases: list[str],
    split_name: str = "test",
    log: Callable[[str], None] = print,
    *,
    figure: str | None = None,
) -> list[dict[str, Any]]:
    """For each variant with two or more finished trials: the mean of their logits on `split`, evaluated
    like one trial (predict.load(run, variant, trial="all")). Averaging evens out seed-to-seed spread.
    `figure`: also draw the task's example figure of each average, plots/<variant>_mean_of_trials_<figure>.png."""
    from jaxadl.predict import load  # PIL, only where saved trials are loaded

    out = []
    for name, runs in by_variant(trials).items():
        done = [t for t in runs if not t.get("failed")]
        if len(done) < 2:
            continue
        predictor = load(run_dir, name, trial="all")
        batch = int(done[0]["train_config"].get("eval_batch_size", 500))
        evaluation = predictor.task.evaluate_logits(predictor.batch_logits(split.images, batch), split, cases)
        summary = _summary(evaluation)
        out.append(
            {"variant": name, "trials": [t["trial"] for t in done], **evaluation.record, "eval": summary}
        )
        if figure:
            title = f"{name}, {ensemble_label(out[-1])}"
            plot = RunFolder(run_dir).ensemble_plot(name, figure)
            predictor.task.example_figure(split, split_name, evaluation, title, plot)
        metric = predictor.task.main_metric
        note = predictor.task.summary_note(summary)
        log(
            f"{name}, mean of {len(done)} trials' logits: {split_name} {metric} {summary[metric]['mean']:.4f}{note}"
        )
    return out


def _evaluate_trial(
    run_dir: Path, rec: dict[str, Any], eval_data: Any, cases: list[str]
) -> tuple[dict[str, Any], Task, Evaluation]:
    """A finished trial's record with its saved weights evaluated again, by its task as the run evaluated it;
    the task and the evaluation too, for its figure."""
    from jaxadl.predict import restore_trial  # PIL, only where a run is re-evaluated

    model, task, variables = restore_trial(run_dir, rec)
    cfg = rec["train_config"]
    evaluator = Evaluator(model, task, int(cfg.get("eval_batch_size", 500)), bool(cfg.get("tta")))
    state = evaluation_state(variables["params"], variables.get("batch_stats"))
    evaluation = task.evaluate(evaluator, state, eval_data, cases)
    return {**rec, **evaluation.record, "eval": _summary(evaluation)}, task, evaluation

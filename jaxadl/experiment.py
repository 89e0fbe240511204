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
from jax.sharding import Mesh

from jaxadl import plots, report
from jaxadl.data.base import Dataset, Split
from jaxadl.parallel import broadcast_text, is_main_process, make_mesh, on_main_first
from jaxadl.progress import format_seconds
from jaxadl.run_folder import RunFolder, RunFolderError, write_json
from jaxadl.saved_runs import case_names, ensembles, eval_split, summary
from jaxadl.tasks import Evaluation, Task
from jaxadl.train import DivergenceError, FitResult, TrainConfig, Trainer, check_batch_size, evaluate, fit


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row group of the report's tables: a model and recipe, trained `trials` times (seeds seed+i)."""

    name: str
    model: nn.Module
    task: Task
    train: TrainConfig
    trials: int = 1


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


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every trial of a run shares: the data and the split it is evaluated on, the folder, the options."""

    data: Dataset
    eval_split: str
    eval_data: Split
    folder: RunFolder
    mesh: Mesh
    log: Callable[[str], None] = print
    resume: bool = False
    keep: int = 2

    @property
    def cases(self) -> list[str]:
        """The evaluated examples' names."""
        return case_names(self.data, self.eval_split, len(self.eval_data))


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
    split, eval_data = eval_split(data)
    ctx = RunContext(data, split, eval_data, RunFolder(out), mesh, log, resume, keep)
    folder = ctx.folder

    def start_folder() -> None:  # process 0 alone writes the run folder; all take part in checkpoints
        prepare_folder(folder.root, experiment, config, resume=resume, overwrite=overwrite)
        tasks = {v.name: v.task.to_record() for v in variants}  # what each variant's metrics mean
        write_json(folder.config, {"experiment": experiment, **config, "tasks": tasks})
        if not resume or not folder.metrics.exists():
            folder.metrics.write_text("")

    on_main_first(start_folder, others=False)
    log(plan(variants, data, split, folder.root, mesh.devices.size))
    trials = _run_trials(ctx, variants)
    together = []  # several processes would each restore every trial: there, --eval-only (one process) does it
    if keep and jax.process_count() == 1:
        together = ensembles(folder.root, trials, eval_data, ctx.cases, split, log=log, figure="example")
    results = {
        "experiment": experiment,
        "dataset": data.name,
        "dataset_meta": data.meta,
        "eval_split": split,
        "devices": int(mesh.devices.size),  # the data-parallel mesh the run trained on (--devices)
        "trials": trials,
        "ensembles": together,
        "environment": environment(),
    }
    if is_main_process():
        _write_results(ctx, variants, config.get("recipe"), results)
    return results


def _run_trials(ctx: RunContext, variants: list[Variant]) -> list[dict[str, Any]]:
    """Every variant's trials in order: trained, or (resuming) taken from a finished trial's record."""
    main, data, log = is_main_process(), ctx.data, ctx.log
    total_trials, trial_seconds = sum(v.trials for v in variants), []
    trials: list[dict[str, Any]] = []
    for variant in variants:
        for trial in range(1, variant.trials + 1):
            left = total_trials - len(trials)
            eta = f"; ~{format_seconds(np.mean(trial_seconds) * left)} left" if trial_seconds else ""
            log(
                f"== {variant.name} trial {trial} ({len(trials) + 1} of {total_trials} in this run{eta}): "
                f"{len(data.train)} train / {len(data.val) if data.val is not None else 0} val / "
                f"{len(ctx.eval_data)} {ctx.eval_split} =="
            )
            done = ctx.folder.trial_record(variant.name, trial)
            finished = broadcast_text(done.read_text() if main and ctx.resume and done.exists() else "")
            if finished:  # process 0's reading, so every process skips the same trials
                log(f"   finished before; taken from {done}")
                trials.append(json.loads(finished))
                continue
            record = _run_trial(ctx, variant, trial)
            if main:
                done.parent.mkdir(exist_ok=True)
                write_json(done, record)
            trials.append(record)
            if "train_seconds" in record:
                trial_seconds.append(record["train_seconds"] + record["compile_seconds"])
    return trials


def _write_results(
    ctx: RunContext, variants: list[Variant], recipe: str | None, results: dict[str, Any]
) -> None:
    """The variants figure, results.json and results.md (the first variant's task's table)."""
    experiment, folder = results["experiment"], ctx.folder
    panels = report.variant_panels([v.task for v in variants], results["trials"])
    if panels:
        plots.overlay(panels, f"{experiment}: variants", folder.variants_plot)
    write_json(folder.results_json, results)
    table = report.table(variants[0].task, results["trials"], ctx.eval_split, results["ensembles"])
    recipe = f"Recipe: {recipe} (resolved values in config.json). " if recipe else ""
    folder.results_md.write_text(
        f"# {experiment} on {ctx.data.name}\n\n{recipe}Evaluated on the {ctx.eval_split} split "
        f"({len(ctx.eval_data)} examples); the selected epoch is the one evaluated.\n\n{table}\n"
    )
    ctx.log("\n" + table)
    ctx.log(f"\nwrote {folder.root}/results.md, results.json, metrics.jsonl and plots")


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


def _run_trial(ctx: RunContext, variant: Variant, trial: int) -> dict[str, Any]:
    """Train one trial, evaluate it with its task, draw its figures; the trial's record."""
    task, data, folder = variant.task, ctx.data, ctx.folder
    cfg = dataclasses.replace(variant.train, seed=variant.train.seed + trial - 1)
    trainer = Trainer(variant.model, task, cfg, len(data.train), mesh=ctx.mesh)
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
            checkpoint_dir=checkpoints if ctx.keep else None,
            keep=ctx.keep,
            resume=ctx.resume,
            verbose=True,
            log=ctx.log,
        )
    except DivergenceError as e:
        ctx.log(
            f"  {variant.name} trial {trial} stopped: {e}; its last good checkpoint is kept; "
            "going on with the next trial"
        )
        record.update(failed=str(e), failed_step=e.step)
        return record
    ctx.log(f"  compiled in {result.compile_seconds:.1f}s (not counted in epoch times)")
    evaluation = evaluate(trainer.evaluator, result.state.eval_variables(), ctx.eval_data, ctx.cases)
    record.update(evaluation.record)
    record.update(_trial_summary(task, result, evaluation, train_seconds=time.perf_counter() - t0))
    _log_trial(ctx, trainer, record)
    if is_main_process():
        _trial_figures(ctx, variant, trial, trainer, result, evaluation)
    return record


def _trial_summary(
    task: Task, result: FitResult, evaluation: Evaluation, train_seconds: float
) -> dict[str, Any]:
    """A trained trial's record fields: the evaluation's summary, the training history, the timings."""
    val_key = task.key("val")
    return {
        "eval": summary(evaluation),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_val": max((r[val_key] for r in result.history if val_key in r), default=None),
        "epochs_run": len(result.history),
        "compile_seconds": result.compile_seconds,
        "train_seconds": train_seconds - result.compile_seconds,
    }


def _log_trial(ctx: RunContext, trainer: Trainer, record: dict[str, Any]) -> None:
    """Log the trial's main metric, and a note when it is no better than chance."""
    reporter, metric, evaluated = report.for_task(trainer.task), trainer.task.main_metric, record["eval"]
    note = reporter.note(evaluated)
    ctx.log(
        f"  {ctx.eval_split} {metric}: {evaluated[metric]['mean']:.4f}{note}; selected epoch {record['best_epoch']}"
    )
    chance = reporter.chance_level(ctx.eval_data.labels)
    note = _not_learned_note(trainer.cfg, trainer.steps_per_epoch, metric, evaluated[metric]["mean"], chance)
    if note:
        ctx.log(note)


def _trial_figures(
    ctx: RunContext, variant: Variant, trial: int, trainer: Trainer, result: FitResult, evaluation: Evaluation
) -> None:
    """A trial's figures: training loss per step, train/val history, and the task's example."""
    task, title, folder = variant.task, f"{variant.name}, trial {trial}", ctx.folder
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
    example = folder.plot(variant.name, trial, "example")
    report.for_task(task).example_figure(ctx.eval_data, ctx.eval_split, evaluation, title, example)

"""A run's trials: each variant's trials trained one after another, or together as one program.

Each trial checkpoints every epoch under checkpoints/<variant>_trialN/ and, when done, writes
trials/<variant>_trialN.json; resuming skips finished trials and continues unfinished ones.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import numpy as np
from jax.sharding import Mesh

from jaxadl import plots, report
from jaxadl.checkpoint import saved_epochs
from jaxadl.data.base import Dataset, Split
from jaxadl.evaluator import evaluate
from jaxadl.parallel import broadcast_text, is_main_process
from jaxadl.progress import format_seconds
from jaxadl.run_folder import RunFolder, parse_record, write_json
from jaxadl.saved_runs import case_names, summary
from jaxadl.tasks import Evaluation, Task
from jaxadl.together import TrialsTrainer, fit_trials
from jaxadl.train import DivergenceError, FitResult, fit
from jaxadl.trainer import TrainConfig, Trainer


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row group of the report's tables: a model and recipe, trained `trials` times (seeds seed+i)."""

    name: str
    model: nn.Module
    task: Task
    train: TrainConfig
    trials: int = 1


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
    together: bool = False  # a variant's unfinished trials as one program (jaxadl.together)

    @property
    def cases(self) -> list[str]:
        """The evaluated examples' names."""
        return case_names(self.data, self.eval_split, len(self.eval_data))


def run_trials(ctx: RunContext, variants: list[Variant]) -> list[dict[str, Any]]:
    """Every variant's trials in order: trained, or (resuming) taken from a finished trial's record."""
    total, trials, seconds = sum(v.trials for v in variants), [], []
    for variant in variants:
        records = _finished(ctx, variant)
        pending = [t for t in range(1, variant.trials + 1) if t not in records]
        groups = _groups(ctx, variant, pending)
        for group in groups:
            done = len(trials) + len(records)
            eta = f"; ~{format_seconds(np.mean(seconds) * (total - done))} left" if seconds else ""
            ctx.log(_header(ctx, variant, group, f"{done + 1} of {total} in this run{eta}"))
            new = (
                _run_together(ctx, variant, group)
                if len(group) > 1
                else {group[0]: _run_trial(ctx, variant, group[0])}
            )
            for trial, record in new.items():
                if is_main_process():
                    ctx.folder.trial_record(variant.name, trial).parent.mkdir(exist_ok=True)
                    write_json(ctx.folder.trial_record(variant.name, trial), record)
                if "train_seconds" in record:
                    seconds.append(record["train_seconds"] + record["compile_seconds"])
            records.update(new)
        trials.extend(records[t] for t in sorted(records))
    return trials


def _groups(ctx: RunContext, variant: Variant, pending: list[int]) -> list[list[int]]:
    """How a variant's unfinished trials train: one by one, or (together) as one group of those at the same
    saved epoch (or one save ahead of it, which they repeat); a trial further ahead resumes alone first."""
    if not ctx.together or len(pending) < 2:
        return [[t] for t in pending]
    saved = {
        t: saved_epochs(ctx.folder.checkpoints(variant.name, t) / "last") if ctx.resume else []
        for t in pending
    }
    low = min(max(epochs, default=0) for epochs in saved.values())
    group = [t for t in pending if max(saved[t], default=0) == low or low in saved[t]]
    alone = [[t] for t in pending if t not in group]
    return alone + ([group] if len(group) > 1 else [[t] for t in group])


def _finished(ctx: RunContext, variant: Variant) -> dict[int, dict[str, Any]]:
    """A variant's trials finished before (resuming), by trial number; process 0's reading, so every
    process skips the same trials. A trial that ran fewer epochs than now asked for is not among them: its
    record goes, and it goes on from its checkpoint."""
    records = {}
    for trial in range(1, variant.trials + 1):
        done = ctx.folder.trial_record(variant.name, trial)
        text = is_main_process() and ctx.resume and done.exists() and done.read_text()
        if finished := broadcast_text(text or ""):
            record = parse_record(finished, done)
            asked = variant.train.epochs
            ran = record.get("epochs_run", asked)
            if "failed" not in record and ran < asked:  # --epochs raised on a constant rate (prepare_folder)
                kept = ctx.folder.checkpoints(variant.name, trial).exists()
                if is_main_process():  # its record would read as finished until it is (a sweep, cv_summary)
                    done.unlink()
                ctx.log(
                    f"== {variant.name} trial {trial}: finished {ran} epochs before; goes on to {asked} "
                    + ("from its last checkpoint" if kept else "from the start (no checkpoint was kept)")
                )
                continue
            ctx.log(f"== {variant.name} trial {trial}: finished before; taken from {done}")
            records[trial] = record
    return records


def _header(ctx: RunContext, variant: Variant, group: list[int], where: str) -> str:
    """The line that starts a trial (or trials trained together): which, how far along, the data's sizes."""
    data = ctx.data
    which = f"trial {group[0]}" if len(group) == 1 else f"trials {', '.join(map(str, group))} together"
    return (
        f"== {variant.name} {which} ({where}): {len(data.train)} train / "
        f"{len(data.val) if data.val is not None else 0} val / {len(ctx.eval_data)} {ctx.eval_split} =="
    )


def _start(ctx: RunContext, variant: Variant, trial: int) -> tuple[TrainConfig, dict[str, Any]]:
    """A trial's config (its seed) and the first fields of its record."""
    task, folder = variant.task, ctx.folder
    cfg = dataclasses.replace(variant.train, seed=variant.train.seed + trial - 1)
    return cfg, {
        "variant": variant.name,
        "trial": trial,
        "seed": cfg.seed,
        "train_config": dataclasses.asdict(cfg),
        "model_spec": model_spec(variant.model),
        "task": task.to_record(),
        "checkpoints": folder.checkpoints(variant.name, trial).relative_to(folder.root).as_posix(),
        "eval_split": ctx.eval_split,
        "input_shape": list(ctx.data.train.images.shape[1:]),
        **task.record_fields(ctx.data.meta),
    }


def _epoch_writer(ctx: RunContext, variant: Variant, trial: int) -> Callable[[dict[str, float]], None]:
    """on_epoch for a trial: its record appended to metrics.jsonl (by process 0)."""

    def on_epoch(rec: dict[str, float]) -> None:
        if is_main_process():
            with ctx.folder.metrics.open("a") as f:
                f.write(json.dumps({"variant": variant.name, "trial": trial, **rec}) + "\n")

    return on_epoch


def _run_trial(ctx: RunContext, variant: Variant, trial: int) -> dict[str, Any]:
    """Train one trial, evaluate it with its task, draw its figures; the trial's record."""
    cfg, record = _start(ctx, variant, trial)
    trainer = Trainer(variant.model, variant.task, cfg, len(ctx.data.train), mesh=ctx.mesh)
    t0 = time.perf_counter()
    try:
        result = fit(
            variant.model,
            variant.task,
            ctx.data.train,
            cfg,
            ctx.data.val,
            on_epoch=_epoch_writer(ctx, variant, trial),
            trainer=trainer,
            checkpoint_dir=ctx.folder.checkpoints(variant.name, trial) if ctx.keep else None,
            keep=ctx.keep,
            resume=ctx.resume,
            verbose=True,
            log=ctx.log,
        )
    except DivergenceError as e:
        result = e
    return _finish(ctx, variant, trainer, record, result, time.perf_counter() - t0)


def _run_together(ctx: RunContext, variant: Variant, group: list[int]) -> dict[int, dict[str, Any]]:
    """Train a variant's trials `group` as one program (jaxadl.together); each trial's record."""
    starts = [_start(ctx, variant, trial) for trial in group]
    seeds = [cfg.seed for cfg, _ in starts]
    trainer = TrialsTrainer(
        variant.model, variant.task, starts[0][0], len(ctx.data.train), seeds=seeds, mesh=ctx.mesh
    )
    writers = [_epoch_writer(ctx, variant, trial) for trial in group]
    t0 = time.perf_counter()
    results = fit_trials(
        variant.model,
        variant.task,
        ctx.data.train,
        starts[0][0],
        ctx.data.val,
        seeds=seeds,
        on_epoch=lambda k, rec: writers[k](rec),
        checkpoint_dirs=[ctx.folder.checkpoints(variant.name, t) for t in group] if ctx.keep else None,
        keep=ctx.keep,
        resume=ctx.resume,
        trainer=trainer,
        verbose=True,
        log=ctx.log,
    )
    share = (time.perf_counter() - t0) / len(group)  # each trial's share of the program's time
    records = {}
    for trial, (_, record), result in zip(group, starts, results, strict=True):
        ctx.log(f"  -- {variant.name} trial {trial} (seed {record['seed']}) --")
        record["trained_together"] = group
        records[trial] = _finish(ctx, variant, trainer, record, result, share)
    return records


def _finish(
    ctx: RunContext,
    variant: Variant,
    trainer: Trainer,
    record: dict[str, Any],
    result: FitResult | DivergenceError,
    seconds: float,
) -> dict[str, Any]:
    """A trained trial evaluated with its task, logged and drawn; `seconds`: its training time (with compile)."""
    trial = record["trial"]
    if isinstance(result, DivergenceError):
        ctx.log(
            f"  {variant.name} trial {trial} stopped: {result}; its last good checkpoint is kept; "
            "going on with the next trial"
        )
        return {**record, "failed": str(result), "failed_step": result.step}
    ctx.log(f"  compiled in {result.compile_seconds:.1f}s (not counted in epoch times)")
    t0 = time.perf_counter()
    evaluation = evaluate(trainer.evaluator, result.state.eval_variables(), ctx.eval_data, ctx.cases)
    record.update(evaluation.record)
    seconds += time.perf_counter() - t0
    record.update(_trial_summary(variant.task, result, evaluation, train_seconds=seconds))
    _log_trial(ctx, trainer, record)
    if is_main_process():
        _trial_figures(ctx, variant, trial, trainer, result, evaluation)
    return record


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

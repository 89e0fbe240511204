"""The training loop for both tasks: `fit` runs a Trainer's epochs, validates, records and checkpoints.

Data flow: epoch (jaxadl.trainer) -> history (per-epoch records, step losses, the selected epoch), with
exact resume from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadl.checkpoint import Checkpointer
from jaxadl.data.base import Split
from jaxadl.progress import StepProgress, format_epoch
from jaxadl.step import TrainState
from jaxadl.tasks import Task
from jaxadl.trainer import TrainConfig, Trainer


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf; `step` is the first bad step, `state` the last good one."""

    def __init__(self, step: int, state: TrainState | None = None):
        super().__init__(f"training diverged: non-finite loss at step {step}")
        self.step = step
        self.state = state


@dataclasses.dataclass
class FitResult:
    """What `fit` returns: the selected state, per-epoch history, per-step losses and timings."""

    state: TrainState
    history: list[dict[str, float]]
    step_losses: np.ndarray
    compile_seconds: float
    best_epoch: int


# -- fit: check, resume, then per epoch train, validate, record and checkpoint --------------------------------------
def _check_trainer(trainer: Trainer, model: nn.Module, task: Task, cfg: TrainConfig, num_train: int) -> None:
    """A trainer handed to fit must have been built for the same model, task, config and training set.

    Only `epochs` may be smaller in fit's config: a run stopped early within the trainer's schedule (as an
    interrupted one is)."""
    built = dataclasses.replace(trainer.cfg, epochs=cfg.epochs)
    given = {"model": (model, trainer.model), "task": (task, trainer.task), "cfg": (cfg, built)}
    given["num_train"] = (num_train, trainer.num_train)
    differ = [name for name, (a, b) in given.items() if a != b]
    if differ:
        raise ValueError(f"the trainer passed to fit was built for another {', '.join(differ)}")
    if cfg.epochs > trainer.cfg.epochs:
        raise ValueError(
            f"fit asks for {cfg.epochs} epochs but the trainer's schedule was built for {trainer.cfg.epochs}"
        )


def _trainer_for(
    model: nn.Module, task: Task, train: Split, cfg: TrainConfig, val: Split | None, trainer: Trainer | None
) -> Trainer:
    """The trainer fit runs: the one given (checked against fit's arguments) or a new one."""
    if cfg.select == "best" and (val is None or not len(val)):
        raise ValueError(
            "select='best' chooses the epoch on validation data, but none was given: "
            "pass val=... or use TrainConfig(select='last')"
        )
    if trainer is None:
        return Trainer(model, task, cfg, len(train))
    _check_trainer(trainer, model, task, cfg, len(train))
    return trainer


@dataclasses.dataclass
class RunSoFar:
    """What fit has gathered so far (a checkpoint's metadata holds it): history, step losses, the best epoch."""

    epochs: int  # the epochs fit runs to
    best_epoch: int
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    best_metric: float = -np.inf
    best: TrainState | None = None  # the best epoch's state, kept only for select='best'
    elapsed: list[float] = dataclasses.field(default_factory=list)  # seconds per epoch, evaluation included
    val_every: int = 1  # the cycle of validated and skipped epochs the time estimate averages over

    def meta(self) -> dict[str, Any]:
        """The part a checkpoint stores."""
        return {k: getattr(self, k) for k in ("history", "step_losses", "best_metric", "best_epoch")}

    def note(self, record: dict[str, Any], losses: np.ndarray, seconds: float) -> None:
        """Add a finished epoch (its record, step losses, seconds with evaluation) and its time estimate."""
        self.step_losses.extend(float(v) for v in losses)
        self.elapsed.append(seconds)  # with evaluation: what the rest will take per epoch
        cycles = -(-3 // self.val_every)  # whole cycles of validated and skipped epochs, 3 epochs at least
        recent = self.elapsed[-cycles * self.val_every :]
        record["eta_seconds"] = float(np.mean(recent)) * (self.epochs - record["epoch"])
        self.history.append(record)


def resume_run(
    ckpt: Checkpointer | None, state: TrainState, cfg: TrainConfig, epoch: int | None = None
) -> tuple[TrainState, RunSoFar]:
    """The newest checkpoint's (or `epoch`'s) state and run so far (its best state too for select='best');
    else `state` and a fresh run."""
    restored = ckpt.restore_last(state, epoch) if ckpt is not None else None
    if restored is None:
        return state, RunSoFar(cfg.epochs, best_epoch=cfg.epochs, val_every=cfg.val_every)
    state, meta = restored
    saved = {k: meta[k] for k in ("best_epoch", "history", "step_losses", "best_metric")}
    run = RunSoFar(cfg.epochs, **saved, val_every=cfg.val_every)
    if cfg.select == "best" and (restored_best := ckpt.restore_best(state)) is not None:
        run.best = restored_best[0]
    return state, run


def first_divergence(losses: np.ndarray, start_step: int) -> int | None:
    """The step number of the first non-finite loss among an epoch's, or None when all are finite."""
    finite = np.isfinite(losses)
    return None if finite.all() else start_step + int(np.argmin(finite)) + 1


def epoch_record(trainer: Trainer, metrics: dict[str, np.ndarray], seconds: float, epoch: int) -> dict:
    """An epoch's record from its per-step metrics (on the host) and the seconds it took."""
    cfg, name = trainer.cfg, trainer.task.main_metric
    images = trainer.steps_per_epoch * (trainer.num_train if cfg.full_batch else cfg.batch_size)
    return {
        "epoch": epoch,
        "train_loss": float(
            np.mean(metrics["loss"])
        ),  # the objective: with label smoothing or Dice, augmented
        "train_eval_loss": float(np.mean(metrics["eval_loss"])),  # the loss defined as val_loss is
        trainer.task.key("train"): float(np.mean(metrics[name])),
        "seconds": seconds,
        "images_per_s": images / seconds,
    }


def _train_epoch(trainer: Trainer, state: TrainState, x: jax.Array, y: jax.Array, epoch: int):
    """One training epoch: the new state, its record and step losses; DivergenceError on a non-finite loss."""
    last_good = jax.tree.map(jnp.copy, state)
    t = time.perf_counter()
    state, metrics = trainer.train_epoch(state, x, y)
    metrics = jax.device_get(metrics)
    seconds = time.perf_counter() - t
    losses = np.asarray(metrics["loss"])
    if (bad := first_divergence(losses, int(last_good.step))) is not None:
        raise DivergenceError(bad, last_good)
    return state, epoch_record(trainer, metrics, seconds, epoch), losses


def validates(cfg: TrainConfig, epoch: int, epochs: int) -> bool:
    """Whether epoch `epoch` of `epochs` is validated: every cfg.val_every-th one and the last."""
    return epoch % cfg.val_every == 0 or epoch == epochs


def validate(trainer: Trainer, state: TrainState, val: tuple | None, record: dict, run: RunSoFar) -> bool:
    """Add the validation loss and metric to `record` on the epochs that validate (`validates`); True (and
    the state kept) if this epoch is the best of those."""
    if val is None or not validates(trainer.cfg, record["epoch"], run.epochs):
        return False
    measured, task = trainer.evaluate(state, val), trainer.task
    record["val_loss"] = float(measured["loss"].mean())
    record[task.key("val")] = value = float(measured[task.main_metric].mean())
    if not value > run.best_metric:
        return False
    run.best_metric, run.best_epoch = value, record["epoch"]
    if trainer.cfg.select == "best":
        run.best = jax.tree.map(jnp.copy, state)
    return True


def _fit_epoch(
    trainer: Trainer, state: TrainState, data: tuple, val: tuple | None, epoch: int, run: RunSoFar
):
    """Train and validate epoch `epoch` of `run.epochs`, noted in `run`: the new state, its record, whether best."""
    t = time.perf_counter()
    state, record, losses = _train_epoch(trainer, state, *data, epoch)
    is_best = validate(trainer, state, val, record, run)
    run.note(record, losses, time.perf_counter() - t)
    return state, record, is_best


def _step_progress(trainer: Trainer, verbose: bool) -> StepProgress | None:
    """With `verbose`, progress inside Python-looped epochs (a scanned epoch has no steps to show)."""
    if not verbose or trainer.scan:
        return None
    trainer.on_step = StepProgress("epoch")
    return trainer.on_step


def fit(
    model: nn.Module,
    task: Task,
    train: Split,
    cfg: TrainConfig,
    val: Split | None = None,
    *,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    trainer: Trainer | None = None,
    state: TrainState | None = None,
    checkpoint_dir: str | Path | None = None,
    keep: int = 2,
    resume: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train `model` on `train` for cfg.epochs; evaluate on `val` after every cfg.val_every-th epoch and the
    last (select='best' chooses among those).

    Each record passed to `on_epoch` holds epoch, train loss/metric, val loss/metric (on validated epochs),
    seconds, images/s and the estimated seconds left. `verbose` logs one line per epoch (`log`, print by
    default) and shows progress inside long epochs on stderr (a bar on a terminal, a line every 30 s otherwise).
    With `checkpoint_dir`, every epoch is checkpointed (last `keep` and the best); `resume` continues from
    the newest one there, giving the same numbers as an uninterrupted run. Raises DivergenceError (holding
    the last good state) when the loss turns non-finite.
    """
    trainer = _trainer_for(model, task, train, cfg, val, trainer)
    state = state if state is not None else trainer.init(train.images.shape[1:])
    ckpt = Checkpointer(checkpoint_dir, keep) if checkpoint_dir is not None else None
    state, run = resume_run(ckpt if resume else None, state, cfg)
    data = trainer.put_train(train)[:2]
    val_dev = trainer.put_eval(val) if val is not None and len(val) else None
    t0 = time.perf_counter()
    trainer.compile(state, *data)
    compile_seconds = time.perf_counter() - t0
    progress = _step_progress(trainer, verbose)
    for epoch in range(int(state.step) // trainer.steps_per_epoch + 1, cfg.epochs + 1):
        if progress is not None:
            progress.label = f"epoch {epoch}/{cfg.epochs}"
        state, record, is_best = _fit_epoch(trainer, state, data, val_dev, epoch, run)
        if verbose:
            log(format_epoch(record, cfg.epochs, task.main_metric))
        if ckpt is not None:
            ckpt.save(epoch, state, run.meta(), is_best=is_best)
        if on_epoch is not None:
            on_epoch(record)
    if progress is not None:
        trainer.on_step = None
    if ckpt is not None:
        ckpt.close()
    best = cfg.select == "best" and run.best is not None
    state, best_epoch = (run.best, run.best_epoch) if best else (state, cfg.epochs)
    return FitResult(state, run.history, np.asarray(run.step_losses, np.float32), compile_seconds, best_epoch)

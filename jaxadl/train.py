"""One generic training loop for both tasks: how an epoch runs the step, `fit`, and `evaluate`.

Data flow: arrays (uint8 numpy) -> device (put once) -> epoch (jaxadl.step's train_step over a permutation
drawn on the device; full batch: one step, its gradient summed over chunks) -> history (per-epoch records).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxadl import step
from jaxadl.augment import AugmentConfig
from jaxadl.checkpoint import Checkpointer
from jaxadl.data.base import Split
from jaxadl.evaluator import Evaluator, evaluate, put  # noqa: F401  (evaluate: re-exported with fit)
from jaxadl.optim import OptimConfig, make_optimizer
from jaxadl.parallel import check_divisible, make_mesh, replicated
from jaxadl.progress import StepProgress, format_epoch
from jaxadl.step import StepSpec, TrainState, create_state
from jaxadl.tasks import Task


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf; `step` is the first bad step, `state` the last good one."""

    def __init__(self, step: int, state: TrainState | None = None):
        super().__init__(f"training diverged: non-finite loss at step {step}")
        self.step = step
        self.state = state


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs, batch size, optimizer, augmentation, model selection."""

    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 500
    full_batch: bool = False  # one step per epoch on the gradient of the whole training set
    # full batch: examples per chunk of that gradient (memory; with batch norm also the group whose
    # statistics normalise it, as in ghost batch norm)
    chunk_size: int = 500
    seed: int = 0
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    augment: AugmentConfig | None = None
    select: str = "last"  # "best": keep the epoch with the best validation metric
    ema: float = 0.0  # decay of an exponential moving average of the weights, used for evaluation; 0 = off
    tta: bool = False  # evaluate on the mean logits of the image and its four one-pixel shifts

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.select not in ("last", "best"):
            raise ValueError(f"select must be 'last' or 'best', got {self.select!r}")


@dataclasses.dataclass
class FitResult:
    """What `fit` returns: the selected state, per-epoch history, per-step losses and timings."""

    state: TrainState
    history: list[dict[str, float]]
    step_losses: np.ndarray
    compile_seconds: float
    best_epoch: int


def check_batch_size(batch_size: int, num_train: int, mesh: Mesh) -> None:
    """A mini-batch must split evenly over the devices and fit in the training set."""
    check_divisible(batch_size, mesh)
    if batch_size > num_train:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({num_train} examples)")


class Trainer:
    """One model, task, config and training-set size: its step spec, and how an epoch runs (chosen once).

    The epoch is one scanned program where XLA runs a conv backward pass well inside a loop, else (on CPU:
    jaxlib 0.10 runs it ~100x slower inside a while loop) a Python loop over jitted pieces: the same steps."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        num_train: int,
        *,
        scan: bool | None = None,
        mesh: Mesh | None = None,
    ):
        self.cfg, self.num_train = cfg, num_train
        self.mesh = mesh if mesh is not None else make_mesh()
        self._replicated = replicated(self.mesh)
        n_dev = self.mesh.devices.size
        if cfg.full_batch:  # chunk_size rounded up to the devices, at most the training set
            per_device = min(math.ceil(cfg.chunk_size / n_dev), num_train // n_dev)
            self.chunk = max(per_device, 1) * n_dev
        else:
            check_batch_size(cfg.batch_size, num_train, self.mesh)
            self.chunk = cfg.batch_size
        self.steps_per_epoch = 1 if cfg.full_batch else num_train // cfg.batch_size
        self.tx = make_optimizer(cfg.optim, self.steps_per_epoch * cfg.epochs)
        self.spec = StepSpec(model, task, self.tx, cfg.augment, cfg.ema, cfg.tta, self.mesh)
        self.model, self.task = model, task
        self.evaluator = Evaluator(self.spec, cfg.eval_batch_size)
        self.train_step = functools.partial(step.train_step, self.spec)
        self.scan = scan if scan is not None else jax.default_backend() != "cpu"
        if self.scan:
            self.train_epoch = jax.jit(self._scanned_epoch, donate_argnums=0)
        else:  # the looped epoch's pieces, each jitted once; the state (or the sums) they carry is donated
            jit = lambda fn, donate=0: jax.jit(fn, donate_argnums=donate, out_shardings=self._replicated)
            self._order_program, self._step_program = jit(self._order, ()), jit(self._indexed_step)
            self._zero_program, self._add_program = jit(self._zero_sums, ()), jit(self._add_chunk)
            self._finish_program = jit(self._finish)
            self.train_epoch = self._looped_epoch
        # called as on_step(done, total, loss) inside Python-looped epochs (progress); None: no host syncs
        self.on_step: Callable[[int, int, jax.Array], None] | None = None

    def init(self, input_shape: tuple[int, ...]) -> TrainState:
        """A fresh train state for inputs of `input_shape` (one example, e.g. (28, 28, 3))."""
        state = create_state(self.model, self.tx, input_shape, self.cfg.seed)
        if self.cfg.ema:
            ema = {"params": state.params, "batch_stats": state.batch_stats}
            state = state.replace(ema=jax.tree.map(jnp.copy, ema))  # own buffers: the state is donated
        return jax.device_put(state, self._replicated)

    # -- the step functions, bound to this trainer's spec --------------------------------------------------------
    def _order(self, state: TrainState) -> jnp.ndarray:
        return step.epoch_order(state, self.num_train, self.cfg.batch_size)

    def _indexed_step(self, state: TrainState, idx: jnp.ndarray, data: tuple):
        """train_step on the examples at `idx` (gathered on the device)."""
        return step.train_step(self.spec, state, data[0][idx], data[1][idx])

    def _zero_sums(self, state: TrainState) -> dict[str, Any]:
        return step.zero_sums(self.spec, state)

    def _add_chunk(self, sums: dict[str, Any], i, state: TrainState, data: tuple):
        return step.add_chunk(self.spec, step.Chunks(self.chunk, self.num_train), sums, i, state, data)

    def _finish(self, state: TrainState, sums: dict[str, Any]):
        return step.finish_full_batch(self.spec, state, sums)

    # -- the epoch: one scanned program, or a Python loop over the same steps ------------------------------------
    def _scanned_epoch(self, state: TrainState, images: jax.Array, labels: jax.Array):
        """One epoch as one program: mini-batch steps over a device-drawn order, or one full-batch step."""
        data = (images, labels)
        if not self.cfg.full_batch:
            return jax.lax.scan(lambda s, idx: self._indexed_step(s, idx, data), state, self._order(state))
        chunks = jnp.arange(images.shape[0] // self.chunk)
        sums, _ = jax.lax.scan(
            lambda s, i: self._add_chunk(s, i, state, data), self._zero_sums(state), chunks
        )
        return self._finish(state, sums)

    def _looped_epoch(self, state: TrainState, images: jax.Array, labels: jax.Array):
        """The same epoch as a Python loop over jitted pieces; the data and the order stay on the device."""
        data = (images, labels)
        if not self.cfg.full_batch:
            return self._loop(self._step_program, state, self._order_program(state), data)
        chunks = jnp.arange(images.shape[0] // self.chunk)
        sums, _ = self._loop(self._add_program, self._zero_program(state), chunks, state, data)
        return self._finish_program(state, sums)

    def _loop(self, program: Callable, carry, xs: jax.Array, *consts):
        """carry, out = program(carry, x, *consts) for each row x of xs: the last carry and the stacked outs."""
        outs = []
        for i in range(xs.shape[0]):
            carry, out = program(carry, xs[i], *consts)
            outs.append(out)
            if self.on_step is not None:  # progress shows finished steps, not dispatched ones
                self.on_step(i + 1, xs.shape[0], out["loss"].block_until_ready())
        return carry, jax.tree.map(lambda *a: jnp.stack(a), *outs)

    def compile(self, state: TrainState, images: jax.Array, labels: jax.Array) -> None:
        """Compile the epoch's program(s) ahead of time for these shapes (jit keeps them): epochs time running.

        The looped epoch's inputs that its steps take (the order, the zero sums) are made for real, so each
        program is compiled for exactly the inputs it will get."""
        data = (images, labels)
        if self.scan:
            self.train_epoch.lower(state, images, labels).compile()
        elif not self.cfg.full_batch:
            self._step_program.lower(state, self._order_program(state)[0], data).compile()
        else:
            sums = self._zero_program(state)
            self._add_program.lower(sums, jnp.arange(1)[0], state, data).compile()
            self._finish_program.lower(state, sums).compile()

    # -- data on the device, evaluation -------------------------------------------------------------------------
    def put_train(self, split: Split) -> tuple[jax.Array, jax.Array, int]:
        """The training split on the device (padded to whole chunks for full-batch training)."""
        return put(split, self.chunk if self.cfg.full_batch else 1, self._replicated)

    def put_eval(self, split: Split) -> tuple[jax.Array, jax.Array, int]:
        """An evaluation split on the device(s), padded to whole evaluation batches."""
        return self.evaluator.put(split)

    def evaluate(self, state: TrainState, data: Split | tuple) -> dict[str, np.ndarray]:
        """Per-example metrics of the trained state (its weight average, if any) over a whole split."""
        return self.evaluator.metrics(state.eval_variables(), data)

    def predict(self, state: TrainState, images: np.ndarray) -> np.ndarray:
        """Logits of the trained state (its weight average, if any) for uint8 images [N, H, W, C]."""
        return self.evaluator.logits(state.eval_variables(), images)


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
class _Run:
    """What fit has gathered so far (a checkpoint's metadata holds it): history, step losses, the best epoch."""

    epochs: int  # the epochs fit runs to
    best_epoch: int
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    best_metric: float = -np.inf
    best: TrainState | None = None  # the best epoch's state, kept only for select='best'
    elapsed: list[float] = dataclasses.field(default_factory=list)  # seconds per epoch, evaluation included

    def meta(self) -> dict[str, Any]:
        """The part a checkpoint stores."""
        return {k: getattr(self, k) for k in ("history", "step_losses", "best_metric", "best_epoch")}


def _resume(ckpt: Checkpointer | None, state: TrainState, cfg: TrainConfig) -> tuple[TrainState, _Run]:
    """The newest checkpoint's state and run so far (its best state too for select='best'); else a fresh run."""
    restored = ckpt.restore_last(state) if ckpt is not None else None
    if restored is None:
        return state, _Run(cfg.epochs, best_epoch=cfg.epochs)
    state, meta = restored
    run = _Run(cfg.epochs, meta["best_epoch"], meta["history"], meta["step_losses"], meta["best_metric"])
    if cfg.select == "best" and (restored_best := ckpt.restore_best(state)) is not None:
        run.best = restored_best[0]
    return state, run


def _train_epoch(trainer: Trainer, state: TrainState, x: jax.Array, y: jax.Array, epoch: int):
    """One training epoch: the new state, its record and step losses; DivergenceError on a non-finite loss."""
    last_good = jax.tree.map(jnp.copy, state)
    t = time.perf_counter()
    state, metrics = trainer.train_epoch(state, x, y)
    metrics = jax.device_get(metrics)
    seconds = time.perf_counter() - t
    losses = np.asarray(metrics["loss"])
    if not np.all(np.isfinite(losses)):
        raise DivergenceError(int(last_good.step) + int(np.argmin(np.isfinite(losses))) + 1, last_good)
    cfg, name = trainer.cfg, trainer.task.main_metric
    images = trainer.steps_per_epoch * (trainer.num_train if cfg.full_batch else cfg.batch_size)
    record = {
        "epoch": epoch,
        "train_loss": float(losses.mean()),  # the objective: with label smoothing or Dice, augmented
        "train_eval_loss": float(np.mean(metrics["eval_loss"])),  # the loss defined as val_loss is
        trainer.task.key("train"): float(np.mean(metrics[name])),
        "seconds": seconds,
        "images_per_s": images / seconds,
    }
    return state, record, [float(v) for v in losses]


def _validate(trainer: Trainer, state: TrainState, val: tuple | None, record: dict, run: _Run) -> bool:
    """Add the validation loss and metric to `record`; True (and the state kept) if this epoch is the best."""
    if val is None:
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


def _fit_epoch(trainer: Trainer, state: TrainState, data: tuple, val: tuple | None, epoch: int, run: _Run):
    """Train and validate epoch `epoch` of `run.epochs`, noted in `run`: the new state, its record, whether best."""
    t = time.perf_counter()
    state, record, losses = _train_epoch(trainer, state, *data, epoch)
    run.step_losses.extend(losses)
    is_best = _validate(trainer, state, val, record, run)
    run.elapsed.append(time.perf_counter() - t)  # with evaluation: what the rest will take per epoch
    record["eta_seconds"] = float(np.mean(run.elapsed[-3:])) * (run.epochs - epoch)
    run.history.append(record)
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
    """Train `model` on `train` for cfg.epochs; evaluate on `val` after each epoch.

    Each record passed to `on_epoch` holds epoch, train loss/metric, val loss/metric, seconds, images/s
    and the estimated seconds left. `verbose` logs one line per epoch (`log`, print by default) and shows
    progress inside long epochs on stderr (a bar on a terminal, a line every 30 s otherwise).
    With `checkpoint_dir`, every epoch is checkpointed (last `keep` and the best); `resume` continues from
    the newest one there, giving the same numbers as an uninterrupted run. Raises DivergenceError (holding
    the last good state) when the loss turns non-finite.
    """
    trainer = _trainer_for(model, task, train, cfg, val, trainer)
    state = state if state is not None else trainer.init(train.images.shape[1:])
    ckpt = Checkpointer(checkpoint_dir, keep) if checkpoint_dir is not None else None
    state, run = _resume(ckpt if resume else None, state, cfg)
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

"""One generic training loop for both tasks: explicit train state, jitted epochs, padded evaluation.

Data flow: arrays (uint8 numpy) -> device (put once) -> epoch (train_step over a permutation drawn on the
device; full batch: one step, its gradient summed over chunks) -> history (per-epoch records on the host).
Inference helpers (predict_logits, in_batches) live in jaxadl.inference and are re-exported here.
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
import optax
from flax import struct
from jax.sharding import Mesh

from jaxadl.augment import AugmentConfig, augment
from jaxadl.checkpoint import Checkpointer
from jaxadl.data.base import Split
from jaxadl.inference import batch_metrics, in_batches, model_variables, predict_logits
from jaxadl.optim import OptimConfig, make_optimizer
from jaxadl.parallel import batch_sharded, check_divisible, make_mesh, replicated
from jaxadl.progress import StepProgress, format_epoch
from jaxadl.tasks import Task


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree (checkpointable, donatable)."""

    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jnp.ndarray  # raw uint32[2] key: data order and augmentation derive from it and the step
    ema: Any = None  # {"params", "batch_stats"} averaged over steps when TrainConfig.ema > 0, else None

    def eval_variables(self) -> tuple[Any, Any]:
        """(params, batch_stats) to evaluate with: the weight average when there is one."""
        if self.ema is not None:
            return self.ema["params"], self.ema["batch_stats"]
        return self.params, self.batch_stats


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


def create_state(
    model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...], seed: int = 0
) -> TrainState:
    """Initialise parameters (and batch-norm statistics) for inputs of `input_shape` (one example)."""
    init_key, rng = jax.random.split(jax.random.PRNGKey(seed))
    # one program, compiled without optimisation on CPU (a U-Net's init compiles ~10x faster, same values)
    init = jax.jit(lambda key, x: model.init(key, x, train=False))
    x0 = jnp.zeros((1, *input_shape), jnp.float32)
    opts = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
    variables = init.lower(init_key, x0).compile(compiler_options=opts)(init_key, x0)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=rng,
    )


def put(split: Split, pad_to: int = 1, sharding: Any = None) -> tuple[jax.Array, jax.Array, int]:
    """Copy a split to the device(s) once, padded with zeros to a multiple of `pad_to` examples."""
    n = len(split)
    total = math.ceil(n / pad_to) * pad_to
    x, y = split.images, split.labels
    if total != n:
        x = np.concatenate([x, np.zeros((total - n, *x.shape[1:]), x.dtype)])
        y = np.concatenate([y, np.zeros((total - n, *y.shape[1:]), y.dtype)])
    return jax.device_put(x, sharding), jax.device_put(y, sharding), n


def check_batch_size(batch_size: int, num_train: int, mesh: Mesh) -> None:
    """A mini-batch must split evenly over the devices and fit in the training set."""
    check_divisible(batch_size, mesh)
    if batch_size > num_train:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({num_train} examples)")


def evaluation_state(params: Any, batch_stats: Any) -> TrainState:
    """A state holding only weights to evaluate (a saved run's), so that evaluation takes it as a trained one."""
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats or {}, opt_state=(), rng=None
    )


class Evaluator:
    """Jitted evaluation of a model and task (metrics of a padded split, logits): training's and a saved run's."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        eval_batch_size: int = 500,
        tta: bool = False,
        mesh: Mesh | None = None,
    ):
        self.model, self.task, self.eval_batch_size, self.tta = model, task, eval_batch_size, tta
        self.mesh = mesh if mesh is not None else make_mesh()
        self._replicated, self._sharded = replicated(self.mesh), batch_sharded(self.mesh)
        n_dev = self.mesh.devices.size
        self.eval_batch = math.ceil(eval_batch_size / n_dev) * n_dev
        # results replicated, so every process (also of a multi-host run) can read them back
        evaluate = functools.partial(
            batch_metrics, model, task, batch=self.eval_batch, tta=tta, shard=self.shard_batch
        )
        self.evaluate_padded = jax.jit(evaluate, out_shardings=self._replicated)
        logits = lambda p, s, x: predict_logits(model, p, s, task.inputs(x), tta)
        self._predict = jax.jit(logits, out_shardings=self._replicated)

    def shard_batch(self, x: jnp.ndarray) -> jnp.ndarray:
        """Split a batch over the mesh's devices (a no-op on one device)."""
        return jax.lax.with_sharding_constraint(x, self._sharded)

    def put_eval(self, split: Split) -> tuple[jax.Array, jax.Array, int]:
        """An evaluation split on the device(s), padded to whole evaluation batches."""
        return put(split, self.eval_batch, self._replicated)

    def evaluate(
        self, state: TrainState, data: Split | tuple[jax.Array, jax.Array, int]
    ) -> dict[str, np.ndarray]:
        """Per-example metrics (loss, accuracy or f1) over a whole split, padding removed."""
        x, y, n = self.put_eval(data) if isinstance(data, Split) else data
        out = self.evaluate_padded(*state.eval_variables(), x, y)
        return {k: np.asarray(v)[:n] for k, v in out.items()}

    def predict(self, state: TrainState, images: np.ndarray) -> np.ndarray:
        """Logits for uint8 images [N, H, W, C], evaluated in batches of eval_batch_size."""
        params, batch_stats = state.eval_variables()
        put_ = lambda x: jax.device_put(x, self._replicated)  # the same images in every process
        return in_batches(lambda x: self._predict(params, batch_stats, put_(x)), images, self.eval_batch_size)


class Trainer(Evaluator):
    """Jitted train-epoch and evaluation functions for one model, task, config and training-set size."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        num_train: int,
        scan: bool | None = None,
        mesh: Mesh | None = None,
    ):
        super().__init__(model, task, cfg.eval_batch_size, cfg.tta, mesh)
        self.cfg, self.num_train = cfg, num_train
        n_dev = self.mesh.devices.size
        if cfg.full_batch:  # chunk_size rounded up to the devices, at most the training set
            per_device = min(math.ceil(cfg.chunk_size / n_dev), num_train // n_dev)
            self.chunk = max(per_device, 1) * n_dev
        else:
            check_batch_size(cfg.batch_size, num_train, self.mesh)
            self.chunk = cfg.batch_size
        self.steps_per_epoch = 1 if cfg.full_batch else num_train // cfg.batch_size
        self.tx = make_optimizer(cfg.optim, self.steps_per_epoch * cfg.epochs)
        # XLA:CPU (jaxlib 0.10) runs a conv backward pass inside a while loop ~100x slower than outside one,
        # so on CPU an epoch loops in Python over jitted pieces; elsewhere it is one program (lax.scan)
        self.scan = scan if scan is not None else jax.default_backend() != "cpu"
        self.train_epoch = jax.jit(self._epoch, donate_argnums=0) if self.scan else self._epoch
        self._programs: dict[tuple[Callable, bool], Any] = {}  # the Python-looped epoch's jitted pieces
        self._ahead = False  # True while compile() runs the looped epoch to compile its pieces
        # called as on_step(done, total, loss) inside Python-looped epochs (progress); None: no host syncs
        self.on_step: Callable[[int, int, jax.Array], None] | None = None

    def init(self, input_shape: tuple[int, ...]) -> TrainState:
        """A fresh train state for inputs of `input_shape` (one example, e.g. (28, 28, 3))."""
        state = create_state(self.model, self.tx, input_shape, self.cfg.seed)
        if self.cfg.ema:
            ema = {"params": state.params, "batch_stats": state.batch_stats}
            state = state.replace(ema=jax.tree.map(jnp.copy, ema))  # own buffers: the state is donated
        return jax.device_put(state, self._replicated)

    # -- one step: pure functions of the state and a batch -------------------------------------------------------
    def _prepare(self, state: TrainState, images: jnp.ndarray, labels: jnp.ndarray, salt: jnp.ndarray):
        """uint8 images -> the model's inputs, augmented with a key drawn from the seed and `salt`."""
        images, labels = self.shard_batch(images), self.shard_batch(labels)
        x = images.astype(jnp.float32) / 255.0
        if self.cfg.augment is not None:
            key = jax.random.fold_in(jax.random.fold_in(state.rng, 1), salt)
            x, labels = augment(key, x, labels, self.cfg.augment)
        return self.task.normalize(x), labels

    def _loss_and_grads(self, state: TrainState, batch_stats: Any, x, y, weights, mask=None):
        """Weighted loss, its gradient, the new batch statistics and the outputs (mask: rows batch norm counts)."""

        def loss_fn(params):
            extra = {} if mask is None else {"mask": mask}
            out, updates = self.model.apply(
                model_variables(params, batch_stats), x, train=True, mutable=["batch_stats"], **extra
            )
            per_example = self.task.loss(out, y)
            return jnp.sum(per_example * weights), (updates.get("batch_stats", batch_stats), out)

        (loss, (new_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return loss, grads, new_stats, logits

    def _apply_grads(self, state: TrainState, grads: Any, batch_stats: Any) -> TrainState:
        """The optimizer's update, the new batch statistics, the step count and the weight average."""
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema
        if self.cfg.ema:  # the decay ramps up over the first steps so early averages are not stuck at init
            step = state.step.astype(jnp.float32)
            decay = jnp.minimum(self.cfg.ema, (1.0 + step) / (10.0 + step))
            new = {"params": params, "batch_stats": batch_stats}
            ema = jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), ema, new)
        return state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state, ema=ema
        )

    def train_step(self, state: TrainState, images: jnp.ndarray, labels: jnp.ndarray):
        """One optimizer step on one uint8 batch: (state, batch) -> (state, metrics). Pure."""
        x, y = self._prepare(state, images, labels, state.step)
        weights = jnp.full((x.shape[0],), 1.0 / x.shape[0])
        loss, grads, stats, logits = self._loss_and_grads(state, state.batch_stats, x, y, weights)
        # the loss as evaluated (no smoothing, no Dice) and the metric, on this training batch
        measured = self.task.metrics(logits, y)
        name = self.task.main_metric
        metrics = {"loss": loss, "eval_loss": measured["loss"].mean(), name: measured[name].mean()}
        return self._apply_grads(state, grads, stats), metrics

    # -- mini-batch epoch: steps over an order drawn on the device -----------------------------------------------
    def _order(self, state: TrainState) -> jnp.ndarray:
        """This epoch's batches as rows of example indices, drawn on the device from the seed and epoch."""
        epoch = state.step // self.steps_per_epoch
        key = jax.random.fold_in(jax.random.fold_in(state.rng, 0), epoch)
        order = jax.random.permutation(key, self.num_train)[: self.steps_per_epoch * self.cfg.batch_size]
        return order.reshape(self.steps_per_epoch, self.cfg.batch_size)

    def _indexed_step(self, state: TrainState, idx: jnp.ndarray, images: jax.Array, labels: jax.Array):
        """train_step on the examples at `idx` (gathered on the device)."""
        return self.train_step(state, images[idx], labels[idx])

    # -- full-batch epoch: one step, its gradient accumulated over chunks of the training set --------------------
    def _zero_sums(self, state: TrainState) -> dict[str, Any]:
        """Empty sums of the gradient, batch statistics, loss and metrics of a full-batch step."""
        zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)
        sums = {"grads": zeros(state.params), "batch_stats": zeros(state.batch_stats), "loss": jnp.zeros(())}
        return {**sums, "eval_loss": jnp.zeros(()), self.task.main_metric: jnp.zeros(())}

    def _add_chunk(self, sums, i, state: TrainState, images: jax.Array, labels: jax.Array):
        """Add chunk i's share of the whole-set gradient (examples past num_train are padding, weight 0).

        Batch norm normalises each chunk by its own statistics, padding left out; the running statistics
        move once per step, by the chunks' statistics averaged with their shares of the training set.
        """
        chunks, name = images.shape[0] // self.chunk, self.task.main_metric
        rows = lambda a: jax.lax.dynamic_slice_in_dim(a, i * self.chunk, self.chunk)
        real = i * self.chunk + jnp.arange(self.chunk) < self.num_train
        weights = real / self.num_train
        x, y = self._prepare(state, rows(images), rows(labels), state.step * chunks + i)
        mask = real if state.batch_stats else None
        loss, grads, stats, logits = self._loss_and_grads(state, state.batch_stats, x, y, weights, mask)
        share, measured = jnp.sum(weights), self.task.metrics(logits, y)
        sums = {
            "grads": jax.tree.map(jnp.add, sums["grads"], grads),
            "batch_stats": jax.tree.map(lambda acc, new: acc + share * new, sums["batch_stats"], stats),
            "loss": sums["loss"] + loss,
            "eval_loss": sums["eval_loss"] + jnp.sum(measured["loss"] * weights),
            name: sums[name] + jnp.sum(measured[name] * weights),
        }
        return sums, {"loss": sums["loss"]}

    def _finish(self, state: TrainState, sums: dict[str, Any]):
        """The full-batch step: the summed gradient applied once; metrics shaped as those of a one-step epoch."""
        metrics = {k: sums[k][None] for k in ("loss", "eval_loss", self.task.main_metric)}
        return self._apply_grads(state, sums["grads"], sums["batch_stats"]), metrics

    # -- the epoch, written once: scanned in one program or looped in Python ------------------------------------
    def _program(self, fn: Callable, donate: bool, args: tuple):
        """Run fn jitted once (donating its first argument if asked); ahead of time, only compile what donates."""
        if (fn, donate) not in self._programs:
            # outputs replicated, as the state is: zero sums then have the type a chunk's sums have (one compile)
            donated = 0 if donate else ()
            self._programs[fn, donate] = jax.jit(fn, donate_argnums=donated, out_shardings=self._replicated)
        jitted = self._programs[fn, donate]
        if self._ahead and donate:
            jitted.lower(*args).compile()  # kept by jit for the calls to come
            return None
        return jitted(*args)

    def _call(self, fn: Callable, *args, donate: bool = False):
        """fn inside the scanned epoch's program, or as its own jitted program in a Python-looped epoch."""
        return fn(*args) if self.scan else self._program(fn, donate, args)

    def _loop(self, body: Callable, carry, xs: jax.Array, *consts):
        """carry, out = body(carry, x, *consts) for each row x of xs: the last carry and the stacked outs."""
        if self.scan:
            return jax.lax.scan(lambda c, x: body(c, x, *consts), carry, xs)
        if self._ahead:  # compiling: the first row stands for all, the carry keeps its types
            return carry, self._program(body, True, (carry, xs[0], *consts))
        outs = []
        for i in range(xs.shape[0]):  # the rows stay on the device: no host copies
            carry, out = self._program(body, True, (carry, xs[i], *consts))
            outs.append(out)
            if self.on_step is not None:  # progress shows finished steps, not dispatched ones
                self.on_step(i + 1, xs.shape[0], out["loss"].block_until_ready())
        return carry, jax.tree.map(lambda *a: jnp.stack(a), *outs)

    def _epoch(self, state: TrainState, images: jax.Array, labels: jax.Array):
        """One epoch: mini-batch steps over a device-drawn order, or one full-batch step summed over chunks."""
        if not self.cfg.full_batch:
            order = self._call(self._order, state)
            return self._loop(self._indexed_step, state, order, images, labels)
        chunks = jnp.arange(images.shape[0] // self.chunk)
        sums = self._call(self._zero_sums, state)
        sums, _ = self._loop(self._add_chunk, sums, chunks, state, images, labels)
        return self._call(self._finish, state, sums, donate=True)

    def compile(self, state: TrainState, images: jax.Array, labels: jax.Array) -> None:
        """Compile the epoch's program(s) ahead of time for these shapes (jit keeps them): epochs time running."""
        if self.scan:
            self.train_epoch.lower(state, images, labels).compile()
            return
        # the looped epoch walked once: steps compiled, not run; what they take (order, zero sums) made for real,
        # so each program is compiled for exactly the inputs it will get
        self._ahead = True
        try:
            self._epoch(state, images, labels)
        finally:
            self._ahead = False

    # -- the training data on the device ----------------------------------------------------------------------------
    def put_train(self, split: Split) -> tuple[jax.Array, jax.Array, int]:
        """The training split on the device (padded to whole chunks for full-batch training)."""
        return put(split, self.chunk if self.cfg.full_batch else 1, self._replicated)


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
        return state, _Run(best_epoch=cfg.epochs)
    state, meta = restored
    run = _Run(meta["best_epoch"], meta["history"], meta["step_losses"], meta["best_metric"])
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
        f"train_{name}": float(np.mean(metrics[name])),
        "seconds": seconds,
        "images_per_s": images / seconds,
    }
    return state, record, [float(v) for v in losses]


def _validate(trainer: Trainer, state: TrainState, val: tuple | None, record: dict, run: _Run) -> bool:
    """Add the validation loss and metric to `record`; True (and the state kept) if this epoch is the best."""
    if val is None:
        return False
    name = trainer.task.main_metric
    measured = trainer.evaluate(state, val)
    record["val_loss"] = float(measured["loss"].mean())
    record[f"val_{name}"] = float(measured[name].mean())
    if not record[f"val_{name}"] > run.best_metric:
        return False
    run.best_metric, run.best_epoch = record[f"val_{name}"], record["epoch"]
    if trainer.cfg.select == "best":
        run.best = jax.tree.map(jnp.copy, state)
    return True


def _fit_epoch(
    trainer: Trainer, state: TrainState, data: tuple, val: tuple | None, epoch: int, epochs: int, run: _Run
):
    """Train and validate epoch `epoch` of `epochs`, noted in `run`: the new state, its record, whether best."""
    t = time.perf_counter()
    state, record, losses = _train_epoch(trainer, state, *data, epoch)
    run.step_losses.extend(losses)
    is_best = _validate(trainer, state, val, record, run)
    run.elapsed.append(time.perf_counter() - t)  # with evaluation: what the rest will take per epoch
    record["eta_seconds"] = float(np.mean(run.elapsed[-3:])) * (epochs - epoch)
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
        state, record, is_best = _fit_epoch(trainer, state, data, val_dev, epoch, cfg.epochs, run)
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

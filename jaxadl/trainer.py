"""How an epoch runs the step: the training config and the Trainer (one scanned program, or a Python loop).

Data flow: arrays (uint8 numpy) -> device (put once) -> epoch (jaxadl.step's train_step over a permutation
drawn on the device; full batch: one step, its gradient summed over chunks). `jaxadl.train.fit` runs the
epochs and keeps the history.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxadl import step
from jaxadl.augment import AugmentConfig
from jaxadl.data.base import Split
from jaxadl.evaluator import Evaluator, put
from jaxadl.optim import OptimConfig, make_optimizer
from jaxadl.parallel import check_divisible, make_mesh, replicated
from jaxadl.step import StepSpec, TrainState, create_state
from jaxadl.tasks import Task


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
    val_every: int = 1  # validate after every N-th epoch and the last (a full-batch epoch is one step)
    ema: float = 0.0  # decay of an exponential moving average of the weights, used for evaluation; 0 = off
    tta: bool = False  # evaluate on the mean logits of the image and its four one-pixel shifts
    focus: float = 0.0  # mini-batch loss weights proportional to each example's loss to this power (0: mean)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1, got {self.val_every}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not self.focus >= 0:  # NaN too
            raise ValueError(f"focus must be >= 0, got {self.focus}")
        if self.focus and self.full_batch:
            raise ValueError("focus weighs the examples of a mini-batch; a full-batch step has none to weigh")
        if self.select not in ("last", "best"):
            raise ValueError(f"select must be 'last' or 'best', got {self.select!r}")


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
        self.spec = StepSpec(model, task, self.tx, cfg.augment, cfg.ema, cfg.tta, self.mesh, focus=cfg.focus)
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
        return jax.device_put(self.fresh_state(input_shape, self.cfg.seed), self._replicated)

    def fresh_state(self, input_shape: tuple[int, ...], seed: int) -> TrainState:
        """A fresh train state from `seed`, its weight average started at the initial weights when asked for."""
        state = create_state(self.model, self.tx, input_shape, seed)
        if self.cfg.ema:
            ema = {"params": state.params, "batch_stats": state.batch_stats}
            state = state.replace(ema=jax.tree.map(jnp.copy, ema))  # own buffers: the state is donated
        return state

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

"""The algorithm, as pure functions of a step spec, the train state and a batch.

Read top to bottom: the state; one optimizer step on a uint8 batch (`train_step`); the full-batch step,
its gradient summed over chunks of the training set; the evaluation forward pass. How an epoch runs
these (one scanned program, or a Python loop of jitted pieces) is jaxadl.trainer's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh

from jaxadl.augment import AugmentConfig, augment
from jaxadl.parallel import batch_sharded
from jaxadl.tasks import Task
from jaxadl.tta import tta_logits


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree (checkpointable, donatable)."""

    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jnp.ndarray  # raw uint32[2] key: data order and augmentation derive from it and the step
    ema: Any = None  # {"params", "batch_stats"} averaged over steps when the spec's ema > 0, else None

    def eval_variables(self) -> tuple[Any, Any]:
        """(params, batch_stats) to evaluate with: the weight average when there is one."""
        if self.ema is not None:
            return self.ema["params"], self.ema["batch_stats"]
        return self.params, self.batch_stats


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What the step functions need beside the state and the batch; fixed for a whole training run.

    `tx` is None where only evaluation runs (a saved run's weights); `mesh`, when given, splits each
    batch over its devices."""

    model: nn.Module
    task: Task
    tx: optax.GradientTransformation | None = None
    augment: AugmentConfig | None = None
    ema: float = 0.0  # decay of the weight average (0: none)
    tta: bool = False  # evaluate on the mean logits of the image and its four one-pixel shifts
    mesh: Mesh | None = None
    focus: float = (
        0.0  # weigh each example's loss by (its loss)^focus, normalised over the batch (0: the mean)
    )

    def shard(self, x: jnp.ndarray) -> jnp.ndarray:
        """Split a batch over the mesh's devices (a no-op without a mesh)."""
        return x if self.mesh is None else jax.lax.with_sharding_constraint(x, batch_sharded(self.mesh))


def model_variables(params: Any, batch_stats: Any) -> dict[str, Any]:
    """The variables flax's apply takes: batch-norm statistics only when the model has some."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


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


# -- one optimizer step ---------------------------------------------------------------------------------------------
def train_step(spec: StepSpec, state: TrainState, images: jnp.ndarray, labels: jnp.ndarray):
    """One optimizer step on one uint8 batch: (state, batch) -> (state, metrics). Pure."""
    x, y = training_inputs(spec, state, images, labels, salt=state.step)
    weights = jnp.full((x.shape[0],), 1.0 / x.shape[0])
    loss, grads, batch_stats, logits = loss_and_grads(spec, state, x, y, weights)
    # the loss as evaluated (no smoothing, no Dice) and the metric, on this training batch
    measured, name = spec.task.metrics(logits, y), spec.task.main_metric
    metrics = {"loss": loss, "eval_loss": measured["loss"].mean(), name: measured[name].mean()}
    return apply_gradients(spec, state, grads, batch_stats), metrics


def training_inputs(spec: StepSpec, state: TrainState, images, labels, *, salt: jnp.ndarray):
    """uint8 images -> the model's inputs, augmented with a key drawn from the state's seed and `salt`."""
    images, labels = spec.shard(images), spec.shard(labels)
    x = images.astype(jnp.float32) / 255.0
    if spec.augment is not None:
        key = jax.random.fold_in(jax.random.fold_in(state.rng, 1), salt)
        x, labels = augment(key, x, labels, spec.augment)
    return spec.task.normalize(x), labels


def loss_and_grads(spec: StepSpec, state: TrainState, x, y, weights, *, mask=None):
    """The weighted loss, its gradient, the new batch statistics and the logits (mask: rows batch norm counts)."""

    def loss_fn(params):
        extra = {} if mask is None else {"mask": mask}
        variables = model_variables(params, state.batch_stats)
        out, updates = spec.model.apply(variables, x, train=True, mutable=["batch_stats"], **extra)
        per_example = spec.task.loss(out, y)
        share = weights
        if spec.focus:  # the worst examples weigh more; the weights are constants for the gradient
            hard = jax.lax.stop_gradient(per_example) ** spec.focus * weights
            share = hard / jnp.sum(hard)
        return jnp.sum(per_example * share), (updates.get("batch_stats", state.batch_stats), out)

    (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return loss, grads, batch_stats, logits


def apply_gradients(spec: StepSpec, state: TrainState, grads: Any, batch_stats: Any) -> TrainState:
    """The optimizer's update, the new batch statistics, the step count and the weight average."""
    updates, opt_state = spec.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema
    if spec.ema:  # the decay ramps up over the first steps so early averages are not stuck at init
        step = state.step.astype(jnp.float32)
        decay = jnp.minimum(spec.ema, (1.0 + step) / (10.0 + step))
        new = {"params": params, "batch_stats": batch_stats}
        ema = jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), ema, new)
    return state.replace(
        step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state, ema=ema
    )


def epoch_order(state: TrainState, num_train: int, batch_size: int) -> jnp.ndarray:
    """This epoch's batches as rows of example indices, drawn on the device from the seed and the epoch."""
    steps = num_train // batch_size
    key = jax.random.fold_in(jax.random.fold_in(state.rng, 0), state.step // steps)
    return jax.random.permutation(key, num_train)[: steps * batch_size].reshape(steps, batch_size)


# -- the full-batch step: one update on the gradient of the whole training set, summed over chunks -------------------
@dataclasses.dataclass(frozen=True)
class Chunks:
    """How a full-batch step walks the training set: chunks of `size` rows; rows past `num_train` are padding."""

    size: int
    num_train: int


def zero_sums(spec: StepSpec, state: TrainState) -> dict[str, Any]:
    """Empty sums of the gradient, batch statistics, loss and metrics of a full-batch step."""
    zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)
    sums = {"grads": zeros(state.params), "batch_stats": zeros(state.batch_stats), "loss": jnp.zeros(())}
    return {**sums, "eval_loss": jnp.zeros(()), spec.task.main_metric: jnp.zeros(())}


def add_chunk(spec: StepSpec, chunks: Chunks, sums: dict[str, Any], i, state: TrainState, data: tuple):
    """Add chunk i's share of the whole-set gradient to `sums`; also (sums, {"loss": running loss}).

    Batch norm normalises each chunk by its own statistics, padding left out; the running statistics
    move once per step, by the chunks' statistics averaged with their shares of the training set.
    """
    images, labels = data
    count, name, size = images.shape[0] // chunks.size, spec.task.main_metric, chunks.size
    rows = lambda a: jax.lax.dynamic_slice_in_dim(a, i * size, size)
    real = i * size + jnp.arange(size) < chunks.num_train
    weights = real / chunks.num_train
    x, y = training_inputs(spec, state, rows(images), rows(labels), salt=state.step * count + i)
    mask = real if state.batch_stats else None
    loss, grads, stats, logits = loss_and_grads(spec, state, x, y, weights, mask=mask)
    share, measured = jnp.sum(weights), spec.task.metrics(logits, y)
    sums = {
        "grads": jax.tree.map(jnp.add, sums["grads"], grads),
        "batch_stats": jax.tree.map(lambda acc, new: acc + share * new, sums["batch_stats"], stats),
        "loss": sums["loss"] + loss,
        "eval_loss": sums["eval_loss"] + jnp.sum(measured["loss"] * weights),
        name: sums[name] + jnp.sum(measured[name] * weights),
    }
    return sums, {"loss": sums["loss"]}


def finish_full_batch(spec: StepSpec, state: TrainState, sums: dict[str, Any]):
    """The full-batch step: the summed gradient applied once; metrics shaped as those of a one-step epoch."""
    metrics = {k: sums[k][None] for k in ("loss", "eval_loss", spec.task.main_metric)}
    return apply_gradients(spec, state, sums["grads"], sums["batch_stats"]), metrics


# -- evaluation: the forward pass in evaluation mode -----------------------------------------------------------------
def eval_logits(spec: StepSpec, params: Any, batch_stats: Any, images: jnp.ndarray) -> jnp.ndarray:
    """Evaluation-mode logits of uint8 images, averaged over the TTA views when the spec asks for them."""
    apply = lambda x: spec.model.apply(model_variables(params, batch_stats), x, train=False)
    x = spec.task.inputs(images)
    return tta_logits(apply, x) if spec.tta else apply(x)


def eval_metrics(spec: StepSpec, params: Any, batch_stats: Any, images, labels, batch: int):
    """Per-example task metrics of uint8 images, a lax.scan over batches of `batch` (len(images) a multiple)."""
    xs = images.reshape(-1, batch, *images.shape[1:])
    ys = labels.reshape(-1, batch, *labels.shape[1:])

    def body(_, pair):
        logits = eval_logits(spec, params, batch_stats, spec.shard(pair[0]))
        return None, spec.task.metrics(logits, spec.shard(pair[1]))

    _, out = jax.lax.scan(body, None, (xs, ys))
    return jax.tree.map(lambda a: a.reshape(-1), out)


def in_batches(fn: Callable[[np.ndarray], jax.Array], images: np.ndarray, batch_size: int) -> np.ndarray:
    """fn over consecutive slices of `images` (the last may be shorter), joined on the host."""
    return np.concatenate(
        [np.asarray(fn(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    )

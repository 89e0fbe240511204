"""jaxadl's side of the step benchmark: ``jaxadl.step.train_step`` for a step spec, jitted with the state
donated and compiled ahead of time; its FLOPs from XLA's cost analysis.

The spec is the one ``jaxadl.trainer.Trainer`` builds for one epoch of one batch (``TrainConfig(epochs=1,
batch_size=B, optim=OptimConfig(optimizer, lr), seed)``): no augmentation, weight average or TTA, the
optimizer's schedule over that one step, the batch split over all devices (a mesh of one on one device).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.step_config import StepTimeConfig
from jaxadl import step
from jaxadl.optim import OptimConfig, make_optimizer
from jaxadl.parallel import check_divisible, make_mesh, replicated
from jaxadl.step import StepSpec, TrainState, create_state, model_variables

# Dense peak FLOP/s (no sparsity) by device-kind substring: (fp32 without tensor cores, bf16 tensor cores).
# H100/H200 are the SXM parts; a PCIe H100 peaks lower (51 / 756 TFLOP/s).
PEAK_FLOPS: dict[str, tuple[float, float]] = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
}


def cost_flops(compiled: Any) -> float:
    """FLOPs of a compiled program from XLA's cost analysis (a dict, or a list of dicts in older jax)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return float("nan")
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", float("nan")))


def peak_flops(device: Any) -> dict[str, float] | None:
    kind = getattr(device, "device_kind", "")
    for key, (fp32, bf16) in PEAK_FLOPS.items():
        if key in kind:
            return {"fp32": fp32, "bf16": bf16}
    return None


def step_spec(args: StepTimeConfig) -> StepSpec:
    """The benchmarked step's spec: the network, its task, the optimizer over one step, all devices."""
    mesh = make_mesh()
    check_divisible(args.batch_size, mesh)
    tx = make_optimizer(OptimConfig(args.optimizer, args.lr), total_steps=1)
    return StepSpec(args.bench.network(args), args.bench.task, tx, mesh=mesh)


def numpy_variables(model: Any, shape: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Variables drawn with numpy (LeCun-normal kernels, zero biases, unit scales and variances).

    Flax's initialisers are exact but compile slowly on XLA:CPU (about 0.7 s per truncated-normal kernel on
    2 busy cores, 10+ s for a U-Net); step times do not depend on the initial values' distribution.
    """
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), jnp.zeros((1, *shape)))
    rng = np.random.default_rng(seed)

    def fill(path: Any, leaf: Any) -> np.ndarray:
        name = path[-1].key
        if name == "kernel":
            return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(leaf.dtype)
        return (np.ones if name in ("scale", "var") else np.zeros)(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def state_from_variables(
    tx: optax.GradientTransformation, variables: dict[str, Any], seed: int
) -> TrainState:
    """A fresh TrainState for optimizer `tx` holding these (host) variables."""
    params = jax.device_put(variables["params"])
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=jax.device_put(variables.get("batch_stats", {})),
        opt_state=jax.jit(tx.init)(params),
        rng=jax.random.PRNGKey(seed),
    )


class JaxSide:
    """jaxadl's train step, jitted with the state donated and compiled ahead of time."""

    name = "jaxadl"

    def __init__(self, args: StepTimeConfig):
        self.spec = spec = step_spec(args)
        shape = args.input_shape
        batch = args.bench.random_split(args.batch_size, args.image_size, args.seed)
        t0 = time.perf_counter()
        if args.fast_init:
            self.initial_variables = numpy_variables(spec.model, shape, args.seed)
            self.state = state_from_variables(spec.tx, self.initial_variables, args.seed)
        else:  # as Trainer.init (no weight average)
            state = create_state(spec.model, spec.tx, shape, args.seed)
            self.state = jax.device_put(state, replicated(spec.mesh))
            variables = model_variables(self.state.params, self.state.batch_stats)
            self.initial_variables = jax.tree.map(np.asarray, variables)
        jax.block_until_ready(self.state)
        self.init_seconds = time.perf_counter() - t0
        self.images, self.labels = jax.device_put(batch.images), jax.device_put(batch.labels)
        t0 = time.perf_counter()
        train_step = jax.jit(functools.partial(step.train_step, spec), donate_argnums=0)
        lowered = train_step.lower(self.state, self.images, self.labels)
        self.lower_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.step = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0
        self.flops = cost_flops(self.step)

    def compile_phases(self) -> None:
        """The step's forward pass (with loss) and its forward + backward, compiled alone."""
        model, task = self.spec.model, self.spec.task

        def loss_of(params, batch_stats, images, labels):
            mutable = ["batch_stats"] if batch_stats else False
            out = model.apply(
                model_variables(params, batch_stats), task.inputs(images), train=True, mutable=mutable
            )
            logits = out[0] if batch_stats else out
            return task.loss(logits, labels).mean()

        args = (self.state.params, self.state.batch_stats, self.images, self.labels)
        self.phase_fns = {
            "forward": jax.jit(loss_of).lower(*args).compile(),
            "forward+backward": jax.jit(jax.grad(loss_of)).lower(*args).compile(),
        }

    def run_phase(self, phase: str, steps: int) -> float:
        if phase == "step":
            return self.run(steps)
        fn, out = self.phase_fns[phase], None
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(self.state.params, self.state.batch_stats, self.images, self.labels)
        jax.block_until_ready(out)
        return time.perf_counter() - t0

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps, synchronised once at the end."""
        t0 = time.perf_counter()
        metrics = None
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.images, self.labels)
        jax.block_until_ready((self.state, metrics))
        seconds = time.perf_counter() - t0
        if metrics is not None and not np.isfinite(float(metrics["loss"])):
            raise FloatingPointError("jaxadl loss became non-finite during the benchmark")
        return seconds

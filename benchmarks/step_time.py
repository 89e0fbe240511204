"""Step time of jaxadl's real train step, optionally side by side with the same model in PyTorch.

    python -m benchmarks.step_time --model=cnn                               # batch 128, Adam
    python -m benchmarks.step_time --model=cnn --batch-norm --compare=torch  # + PyTorch, alternating windows
    python -m benchmarks.step_time --model=unet --batch-size=4 --compare=torch   # width 16, depth 4, 256 px
    python -m benchmarks.step_time --model=cnn --epoch                       # + on-device epoch vs host loop

What is timed: ``jaxadl.Trainer.train_step`` (uint8 batch -> scaled input -> forward, loss, backward,
optimizer update, metric), jitted with the state donated and compiled ahead of time (compile time is
reported apart). After ``--warmup`` steps, ``--windows`` windows of ``--steps-per-window`` steps each are
timed (one device sync per window); the table gives the median per-step time and its spread over the
windows. FLOPs per step come from XLA's cost analysis of the compiled step (a multiply-add counts 2);
the fraction of peak is given for known accelerators only.

``--compare=torch`` builds the same network in PyTorch (``benchmarks.torch_models``, initialised with the
same weights through ``jaxadl.porting``), the same optimizer (``torch.optim.Adam/SGD/Rprop``) and loss
(cross-entropy / BCE-with-logits), uses as many torch threads as the cores this process may use, and
alternates jaxadl and PyTorch windows so that both see the same machine load. The ratio printed is
jaxadl time / PyTorch time (below 1: jaxadl is faster).

``--phases`` also times the forward pass with its loss and the forward + backward pass alone, on both
sides, and prints where a step's time goes (forward, backward, optimizer and the rest).

``--epoch`` also times a whole epoch of ``--epoch-steps`` steps the jaxadl way (data put on the device
once, ``Trainer.train_epoch`` over a device-drawn permutation) against a Python loop that gathers each
batch from host numpy arrays and ``device_put``s it every step, with the same compiled step.

The JSON (``--json``) holds the configuration, the machine (device, cores, threads per side, load
average and runnable processes before and after, versions, XLA_FLAGS) and every figure of the table.
A speed figure counts only from an idle machine: under load PyTorch's threads lose far more than XLA's,
so a ratio taken on a busy machine flatters jaxadl. The run waits up to ``--wait-idle`` seconds for the
1-minute load to fall to half the cores, and when the machine was still busy (load above half the cores
before the first window, or more runnable processes than cores + 1 before or after) the table says so
loudly and the JSON has ``"valid_for_comparison": false`` with the reason in ``"busy"``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxadl
from experiments.cli import opt, parse
from jaxadl import (
    Classification,
    OptimConfig,
    Segmentation,
    SignCNN,
    Task,
    TrainConfig,
    Trainer,
    TrainState,
    UNet,
)
from jaxadl.data.base import Split

TORCH_HINT = "PyTorch is not installed; pip install .[torch] (or pip install torch) for --compare=torch"

# Dense peak FLOP/s (no sparsity) by device-kind substring: (fp32 without tensor cores, bf16 tensor cores).
# H100/H200 are the SXM parts; a PCIe H100 peaks lower (51 / 756 TFLOP/s).
PEAK_FLOPS: dict[str, tuple[float, float]] = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
}


# -- set-up ------------------------------------------------------------------------------------------------
def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


DEFAULT_BATCH = {"cnn": 128, "unet": 4}  # the experiments' batch sizes


def check_positive(cfg: Any, *names: str) -> None:
    """A benchmark config's counts must be >= 1 where set (None takes the model's default)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class StepTimeConfig:
    """What to time; one flag per field (experiments.cli). Fields left None take the model's default."""

    model: str = opt("cnn", "the network to time", choices=("cnn", "unet"))
    batch_norm: bool = opt(False, "BatchNorm after each conv")
    flax_pool: bool = opt(
        False, "cnn: nn.max_pool (select-and-scatter gradient) instead of the default reshape-and-max pool"
    )
    optimizer: str = opt("adam", "the optimizer of the step", choices=("adam", "sgd", "rprop"))
    lr: float = opt(1e-3, "learning rate")
    batch_size: int | None = opt(None, "examples per step", shown="128 (cnn), 4 (unet)")
    image_size: int | None = opt(None, "side of the square input", shown="28 (cnn), 256 (unet)")
    unet_width: int = opt(16, "U-Net features of the first level")
    unet_depth: int = opt(4, "U-Net levels")
    upsample: str = opt("bilinear", "U-Net upsampling", choices=("bilinear", "nearest", "transpose"))
    warmup: int = opt(3, "untimed steps per side before the windows")
    windows: int = opt(5, "timed windows per side")
    steps_per_window: int | None = opt(None, "steps in one timed window", shown="10 (cnn), 3 (unet)")
    compare: str = opt("none", "torch: time PyTorch side by side", choices=("none", "torch"))
    epoch: bool = opt(False, "also time an on-device epoch vs a host-fed loop")
    phases: bool = opt(
        False,
        "also time the forward pass (with loss) and forward + backward alone, to see where a step's time "
        "goes on each side",
    )
    epoch_steps: int = opt(30, "steps in the --epoch comparison")
    seed: int = opt(0, "data and fast-init seed")
    fast_init: bool = opt(
        False, "draw the initial weights with numpy instead of compiling Flax's initialisers (slow on CPU)"
    )
    json: str | None = opt(None, "write the results to this file", shown="none")
    wait_idle: float = opt(
        120.0, "wait at most this many seconds for the 1-minute load to fall to half the cores"
    )

    def __post_init__(self) -> None:
        check_positive(
            self,
            "batch_size",
            "image_size",
            "windows",
            "steps_per_window",
            "epoch_steps",
            "unet_width",
            "unet_depth",
        )
        if self.compare == "torch" and not torch_available():
            raise ValueError(f"{TORCH_HINT}, or --compare=none")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        size = self.image_size or 256
        if self.model == "unet" and size % 2**self.unet_depth:
            raise ValueError(f"image_size {size} is not divisible by 2**{self.unet_depth} (--unet-depth)")

    def resolved(self) -> StepTimeConfig:
        """The config with the model's defaults filled in for the fields left None."""
        cnn = self.model == "cnn"
        return dataclasses.replace(
            self,
            batch_size=self.batch_size or DEFAULT_BATCH[self.model],
            image_size=self.image_size or (28 if cnn else 256),
            steps_per_window=self.steps_per_window or (10 if cnn else 3),
        )


def parse_args(argv: Sequence[str] | None) -> StepTimeConfig:
    """The command line as a resolved config; a bad flag or value exits with code 2 and names the flag."""
    description = "Time jaxadl's train step (and optionally PyTorch's) on random data."
    return parse(StepTimeConfig, argv, description, prog="python -m benchmarks.step_time").resolved()


def build_model(args: StepTimeConfig) -> tuple[Any, Task, tuple[int, ...]]:
    """The jaxadl model, its task and the shape of one input image."""
    if args.model == "cnn":
        model = SignCNN(batch_norm=args.batch_norm, fast_pool=not args.flax_pool)
        return model, Classification(43), (args.image_size,) * 2 + (3,)
    model = UNet(
        depth=args.unet_depth,
        base_features=args.unet_width,
        upsample=args.upsample,
        batch_norm=args.batch_norm,
    )
    return model, Segmentation(), (args.image_size,) * 2 + (1,)


def random_split(args: StepTimeConfig, n: int, shape: tuple[int, ...]) -> Split:
    """n random uint8 images with random labels (classes) or binary masks."""
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    if args.model == "cnn":
        labels = rng.integers(0, 43, n).astype(np.int32)
    else:
        labels = (rng.random((n, *shape[:2], 1)) > 0.5).astype(np.uint8)
    return Split(images, labels)


def train_config(args: StepTimeConfig) -> TrainConfig:
    return TrainConfig(
        epochs=1, batch_size=args.batch_size, optim=OptimConfig(args.optimizer, args.lr), seed=args.seed
    )


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


def num_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_now() -> dict[str, Any]:
    """The 1-minute load average and the runnable processes (this one included), where the OS says."""
    out: dict[str, Any] = {}
    if hasattr(os, "getloadavg"):
        out["load_1min"] = os.getloadavg()[0]
    try:
        with open("/proc/loadavg") as f:
            out["runnable"] = int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        pass
    return out


def wait_for_idle(seconds: float, cores: int) -> None:
    """Sleep until the 1-minute load is at most half the cores, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while load_now().get("load_1min", 0.0) > cores / 2 and time.monotonic() < deadline:
        print(f"waiting for an idle machine: 1-minute load {load_now()['load_1min']:.2f}", flush=True)
        time.sleep(min(10.0, max(deadline - time.monotonic(), 0.0)))


def stamped(
    result: dict[str, Any],
    module: str,
    argv: Sequence[str] | None,
    before: dict[str, Any],
    cores: int,
    json_path: str | None = None,
) -> dict[str, Any]:
    """`result` with the command that made it, the load before and now, and whether it is valid for a
    comparison (`busy_reason`); written to `json_path` when given."""
    after = load_now()
    busy = busy_reason(before, after, cores)
    command = f"python -m benchmarks.{module} " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, **result, "load_before": before, "load_after": after}
    result.update(busy=busy, valid_for_comparison=busy is None)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result


def busy_reason(before: dict[str, Any], after: dict[str, Any], cores: int) -> str | None:
    """Why a run's figures are not valid for a comparison (None: the machine looked idle).

    Under load PyTorch's worker threads lose far more than XLA's, so a ratio taken on a busy machine
    flatters jaxadl; a run counts only when the 1-minute load before it was at most half the cores and
    no more processes were runnable than the benchmark's own, before and after.
    """
    reasons = []
    if before.get("load_1min", 0.0) > cores / 2:
        reasons.append(f"1-minute load {before['load_1min']:.2f} before the first window (> {cores / 2:g})")
    for when, snap in (("before", before), ("after", after)):
        if snap.get("runnable", 1) > cores + 1:
            reasons.append(f"{snap['runnable']} runnable processes {when} (> {cores + 1})")
    return "; ".join(reasons) or None


def spread(seconds_per_step: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of per-step times over windows, in milliseconds."""
    ms = np.asarray(seconds_per_step) * 1e3
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }


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


def state_from_variables(trainer: Trainer, variables: dict[str, Any], seed: int) -> TrainState:
    """A fresh TrainState for `trainer` holding these (host) variables."""
    params = jax.device_put(variables["params"])
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=jax.device_put(variables.get("batch_stats", {})),
        opt_state=jax.jit(trainer.tx.init)(params),
        rng=jax.random.PRNGKey(seed),
    )


# -- the two sides -----------------------------------------------------------------------------------------
class JaxSide:
    """jaxadl's train step, jitted with the state donated and compiled ahead of time."""

    name = "jaxadl"

    def __init__(self, args: StepTimeConfig, model: Any, task: Task, shape: tuple[int, ...]):
        batch = random_split(args, args.batch_size, shape)
        self.trainer = Trainer(model, task, train_config(args), args.batch_size)
        t0 = time.perf_counter()
        if args.fast_init:
            self.initial_variables = numpy_variables(model, shape, args.seed)
            self.state = state_from_variables(self.trainer, self.initial_variables, args.seed)
        else:
            self.state = self.trainer.init(shape)
            self.initial_variables = jax.tree.map(
                np.asarray,
                {"params": self.state.params, "batch_stats": self.state.batch_stats}
                if self.state.batch_stats
                else {"params": self.state.params},
            )
        jax.block_until_ready(self.state)
        self.init_seconds = time.perf_counter() - t0
        self.images, self.labels = jax.device_put(batch.images), jax.device_put(batch.labels)
        t0 = time.perf_counter()
        lowered = jax.jit(self.trainer.train_step, donate_argnums=0).lower(
            self.state, self.images, self.labels
        )
        self.lower_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.step = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0
        self.flops = cost_flops(self.step)
        self.model, self.task = model, task

    def compile_phases(self) -> None:
        """The step's forward pass (with loss) and its forward + backward, compiled alone."""
        model, task = self.model, self.task
        stats = self.state.batch_stats

        def loss_of(params, batch_stats, images, labels):
            variables = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
            out = model.apply(
                variables, task.inputs(images), train=True, mutable=["batch_stats"] if batch_stats else False
            )
            logits = out[0] if batch_stats else out
            return task.loss(logits, labels).mean()

        args = (self.state.params, stats, self.images, self.labels)
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


class TorchSide:
    """The same network, weights, optimizer and loss in PyTorch (eager, CPU or CUDA)."""

    name = "torch"

    def __init__(self, args: StepTimeConfig, model: Any, shape: tuple[int, ...], variables: Any):
        import torch
        import torch.nn.functional as F

        from benchmarks.torch_models import TorchSignCNN, TorchUNet
        from jaxadl.porting import to_torch_state_dict

        self.torch = torch
        torch.set_num_threads(num_cores())
        self.device = torch.device(
            "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        )
        if args.model == "cnn":
            net = TorchSignCNN(args.batch_norm, in_features=int(variables["params"]["fc"]["kernel"].shape[0]))
            self.loss_fn: Callable = F.cross_entropy
        else:
            net = TorchUNet(args.unet_depth, args.unet_width, args.upsample, "relu", args.batch_norm)
            self.loss_fn = F.binary_cross_entropy_with_logits
        sd = to_torch_state_dict(variables, model)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
        self.net = net.to(self.device).train()
        params = self.net.parameters()
        if args.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=args.lr)
        elif args.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=args.lr)
        else:
            self.opt = torch.optim.Rprop(params, lr=args.lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0))
        batch = random_split(args, args.batch_size, shape)
        self.images = torch.from_numpy(np.ascontiguousarray(batch.images.transpose(0, 3, 1, 2))).to(
            self.device
        )
        labels = batch.labels.astype(np.int64) if args.model == "cnn" else batch.labels.transpose(0, 3, 1, 2)
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device)
        self.classification = args.model == "cnn"
        self.compile_seconds = None  # eager: nothing is compiled ahead of time

    def _step(self) -> Any:
        x = self.images.float() / 255.0
        y = self.labels if self.classification else self.labels.float()
        self.opt.zero_grad(set_to_none=True)
        out = self.net(x)
        loss = self.loss_fn(out, y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def compile_phases(self) -> None:
        """Nothing to compile: PyTorch runs eagerly."""

    def run_phase(self, phase: str, steps: int) -> float:
        if phase == "step":
            return self.run(steps)
        t0 = time.perf_counter()
        for _ in range(steps):
            x = self.images.float() / 255.0
            y = self.labels if self.classification else self.labels.float()
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.net(x), y)
            if phase == "forward+backward":
                loss.backward()
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        return time.perf_counter() - t0

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        loss = None
        for _ in range(steps):
            loss = self._step()
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if loss is not None and not np.isfinite(float(loss)):
            raise FloatingPointError("torch loss became non-finite during the benchmark")
        return seconds


def time_sides(sides: list[Any], args: StepTimeConfig) -> dict[str, list[float]]:
    """Warm every side up, then alternate timed windows; seconds per step for each window and side."""
    for side in sides:
        if args.warmup:
            side.run(args.warmup)
    per_step: dict[str, list[float]] = {side.name: [] for side in sides}
    for _ in range(args.windows):
        for side in sides:
            per_step[side.name].append(side.run(args.steps_per_window) / args.steps_per_window)
    return per_step


PHASES = ("forward", "forward+backward", "step")


def time_phases(sides: list[Any], args: StepTimeConfig) -> dict[str, dict[str, float]]:
    """Median ms per call of each phase and side, windows alternating between the sides as for the step."""
    for side in sides:
        side.compile_phases()
    out: dict[str, dict[str, float]] = {}
    for phase in PHASES:
        for side in sides:
            side.run_phase(phase, max(args.warmup, 1))
        windows: dict[str, list[float]] = {side.name: [] for side in sides}
        for _ in range(args.windows):
            for side in sides:
                windows[side.name].append(
                    side.run_phase(phase, args.steps_per_window) / args.steps_per_window
                )
        out[phase] = {name: spread(w)["median"] for name, w in windows.items()}
    return out


def print_phases(phases: dict[str, dict[str, float]]) -> None:
    """Where a step's time goes: forward, backward (difference) and the rest (optimizer, metric; a
    difference of two timings, so XLA's fusion across the whole step can make it small or negative)."""
    names = list(phases["step"])
    derived = {
        "forward (with loss)": phases["forward"],
        "backward": {n: phases["forward+backward"][n] - phases["forward"][n] for n in names},
        "optimizer + rest (diff.)": {n: phases["step"][n] - phases["forward+backward"][n] for n in names},
        "whole step": phases["step"],
    }
    print(
        f"\n{'where the time goes':26}"
        + "".join(f"{n + ' ms':>12}" for n in names)
        + ("  ratio" if len(names) == 2 else "")
    )
    for label, row in derived.items():
        ratio = f"  {row[names[0]] / row[names[1]]:5.2f}" if len(names) == 2 and row[names[1]] > 0 else ""
        print(f"{label:26}" + "".join(f"{row[n]:12.2f}" for n in names) + ratio)


def epoch_comparison(
    args: StepTimeConfig, model: Any, task: Task, shape: tuple[int, ...], step: Callable, variables: Any
) -> dict:
    """Seconds per epoch: on-device data + Trainer.train_epoch vs host batches device_put every step.

    `step` is the compiled train step of the step benchmark (same model, optimizer and batch shape),
    `variables` its initial variables.
    """
    n = args.batch_size * args.epoch_steps
    split = random_split(args, n, shape)
    trainer = Trainer(model, task, train_config(args), n)
    state = state_from_variables(trainer, variables, args.seed)
    x_dev, y_dev, _ = trainer.put_train(split)
    t0 = time.perf_counter()
    trainer.compile(state, x_dev, y_dev)
    compile_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    b = args.batch_size

    def device_epoch(state):
        state, metrics = trainer.train_epoch(state, x_dev, y_dev)
        jax.block_until_ready((state, metrics))
        return state

    def host_epoch(state):
        order = rng.permutation(n)
        metrics = None
        for i in range(args.epoch_steps):
            idx = order[i * b : (i + 1) * b]
            xb, yb = jax.device_put(split.images[idx]), jax.device_put(split.labels[idx])
            state, metrics = step(state, xb, yb)
        jax.block_until_ready((state, metrics))
        return state

    state = host_epoch(device_epoch(state))  # warm-up: one epoch each
    times: dict[str, list[float]] = {"device": [], "host": []}
    for _ in range(max(args.windows, 1)):
        for name, fn in (("device", device_epoch), ("host", host_epoch)):
            t = time.perf_counter()
            state = fn(state)
            times[name].append(time.perf_counter() - t)
    dev, host = float(np.median(times["device"])), float(np.median(times["host"]))
    return {
        "steps": args.epoch_steps,
        "images": args.epoch_steps * b,
        "scan": bool(trainer.scan),
        "compile_s": compile_seconds,
        "on_device_s": dev,
        "host_loop_s": host,
        "on_device_images_per_s": args.epoch_steps * b / dev,
        "host_loop_images_per_s": args.epoch_steps * b / host,
        "host_over_device": host / dev,
        "on_device_windows_s": times["device"],
        "host_loop_windows_s": times["host"],
    }


# -- report ------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    info: dict[str, Any] = {
        "backend": jax.default_backend(),
        "device_kind": getattr(dev, "device_kind", str(dev)),
        "cores": num_cores(),
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "jaxadl": jaxadl.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_start"] = list(os.getloadavg())
    info["load_start"] = load_now()
    info["xla_threads"] = num_cores()  # XLA:CPU's intra-op pool is sized to the usable cores
    return info


def summarise(side: Any, windows: list[float], batch: int, flops: float, peak: dict | None) -> dict:
    stats = spread(windows)
    seconds = stats["median"] / 1e3
    out: dict[str, Any] = {
        "step_ms": stats,
        "windows_ms": [w * 1e3 for w in windows],
        "images_per_s": batch / seconds,
    }
    if side.compile_seconds is not None:
        out["compile_s"] = side.compile_seconds
    if np.isfinite(flops):
        out["flops_per_step"] = flops
        out["flops_per_s"] = flops / seconds
        if peak:
            out["fraction_of_peak_fp32"] = flops / seconds / peak["fp32"]
            out["fraction_of_peak_bf16"] = flops / seconds / peak["bf16"]
    return out


def print_table(result: dict[str, Any]) -> None:
    cfg, machine = result["config"], result["machine"]
    title = (
        f"{cfg['model']}{' +bn' if cfg['batch_norm'] else ''}, {cfg['optimizer']}, batch {cfg['batch_size']}"
    )
    print(f"\n{title}, {cfg['image_size']} px on {machine['device_kind']} ({machine['cores']} cores)")
    threads = f"threads: jaxadl (XLA) {machine.get('xla_threads')}"
    if "torch_threads" in machine:
        threads += f", PyTorch {machine['torch_threads']}"
    start, end = machine.get("load_start", {}), machine.get("load_end", {})
    print(
        f"{threads}; load before {start.get('load_1min', float('nan')):.2f} "
        f"({start.get('runnable', '?')} runnable), after {end.get('load_1min', float('nan')):.2f} "
        f"({end.get('runnable', '?')} runnable)"
    )
    if result.get("busy"):
        print(f"!!! BUSY MACHINE: {result['busy']}. Not valid for a comparison: rerun on an idle machine !!!")
    header = f"{'':8} {'compile s':>9} {'ms/step':>9} {'IQR ms':>15} {'min-max ms':>17} {'img/s':>9} {'GFLOP/s':>8}"
    print(header)
    for name in ("jaxadl", "torch"):
        r = result.get(name)
        if r is None:
            continue
        s = r["step_ms"]
        gflops = f"{r['flops_per_s'] / 1e9:8.1f}" if "flops_per_s" in r else f"{'-':>8}"
        compile_s = f"{r['compile_s']:9.2f}" if "compile_s" in r else f"{'-':>9}"
        line = (
            f"{name:8} {compile_s} {s['median']:9.2f} {s['q1']:7.2f}-{s['q3']:<7.2f} "
            f"{s['min']:8.2f}-{s['max']:<8.2f} {r['images_per_s']:9.1f} {gflops}"
        )
        if "fraction_of_peak_fp32" in r:
            line += f"  {100 * r['fraction_of_peak_fp32']:.1f}% fp32 peak"
        print(line)
    if "flops_per_step" in result.get("jaxadl", {}):
        print(f"XLA cost analysis: {result['jaxadl']['flops_per_step'] / 1e9:.2f} GFLOP per step")
        if result.get("machine", {}).get("backend") not in (None, "cpu"):
            print("  (on GPU the cost analysis leaves out cuDNN convolutions: GFLOP/s is an undercount)")
    if "ratio_jaxadl_over_torch" in result:
        valid = "" if result.get("valid_for_comparison", True) else "  [NOT VALID: busy machine]"
        print(
            f"time ratio jaxadl / PyTorch: {result['ratio_jaxadl_over_torch']:.3f} (below 1: jaxadl faster)"
            + valid
        )
    if "epoch" in result:
        e = result["epoch"]
        print(
            f"epoch of {e['steps']} steps ({e['images']} images): on-device {e['on_device_s']:.3f} s "
            f"({e['on_device_images_per_s']:.0f} img/s, scan={e['scan']}), host-fed loop {e['host_loop_s']:.3f} s "
            f"({e['host_loop_images_per_s']:.0f} img/s): host / device = {e['host_over_device']:.3f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model, task, shape = build_model(args)
    wait_for_idle(args.wait_idle, num_cores())
    machine = machine_info()
    jax_side = JaxSide(args, model, task, shape)
    sides: list[Any] = [jax_side]
    if args.compare == "torch":
        torch_side = TorchSide(args, model, shape, jax_side.initial_variables)
        sides.append(torch_side)
        machine["torch"] = torch_side.torch.__version__
        machine["torch_threads"] = torch_side.torch.get_num_threads()
    per_step = time_sides(sides, args)
    phases = time_phases(sides, args) if args.phases else None
    peak = peak_flops(jax.devices()[0])
    result: dict[str, Any] = {"config": dataclasses.asdict(args), "machine": machine}
    result["jaxadl"] = summarise(jax_side, per_step["jaxadl"], args.batch_size, jax_side.flops, peak)
    result["jaxadl"]["lower_s"] = jax_side.lower_seconds
    result["jaxadl"]["init_s"] = jax_side.init_seconds
    if args.compare == "torch":
        # the same network and batch: XLA's FLOP count applies to both sides
        result["torch"] = summarise(sides[1], per_step["torch"], args.batch_size, jax_side.flops, peak)
        result["ratio_jaxadl_over_torch"] = (
            result["jaxadl"]["step_ms"]["median"] / result["torch"]["step_ms"]["median"]
        )
    if args.epoch:
        result["epoch"] = epoch_comparison(
            args, model, task, shape, jax_side.step, jax_side.initial_variables
        )
    if hasattr(os, "getloadavg"):
        machine["load_avg_end"] = list(os.getloadavg())
    machine["load_end"] = load_now()
    busy = busy_reason(machine["load_start"], machine["load_end"], machine["cores"])
    result["valid_for_comparison"] = busy is None
    result["busy"] = busy
    if phases is not None:
        result["phases_ms"] = phases
    print_table(result)
    if phases is not None:
        print_phases(phases)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-layer profile of the convolutions: forward, input gradient and kernel gradient, beside PyTorch.

    python -m benchmarks.conv_layers                      # SignCNN, batch 128, jaxadl and PyTorch
    python -m benchmarks.conv_layers --model=unet         # UNet(depth 4, width 16) at 256x256, batch 4
    python -m benchmarks.conv_layers --batch-size=32 --compare=none

Each convolution shape of the network (SignCNN's three; the U-Net's distinct ones, with how often each
occurs) is timed alone: the forward convolution, the gradient with respect to its input (dx) and with
respect to its kernel (dw), each a separately compiled XLA program on jaxadl's side
(``lax.conv_general_dilated`` in flax's NHWC/HWIO layout, gradients from ``jax.vjp``) and the ATen
kernels PyTorch's autograd calls on the other (``conv2d``, ``convolution_backward`` with one output each,
NCHW). This says which convolution and which direction keep ``benchmarks.step_time``'s whole step slower
or faster than PyTorch's. Windows alternate between the sides; the median of ``--windows`` is given. A
figure counts only from an idle machine (see ``benchmarks.common``). The networks' convolution shapes
are listed in ``benchmarks.models``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import check_outputs, check_positive, check_torch, idle_machine, num_cores, stamped
from benchmarks.models import MODELS, Conv, ModelFlag, per_model
from experiments.cli import opt, parse

OPS = ("forward", "dx", "dw")


@dataclasses.dataclass(frozen=True)
class ConvLayersConfig(ModelFlag):
    """What to profile; one flag per field (experiments.cli)."""

    model: str = opt("cnn", "whose convolutions", choices=tuple(MODELS))
    batch_size: int | None = opt(None, "examples per call", shown=per_model("batch_size"))
    windows: int = opt(5, "timed windows per op and side")
    calls: int = opt(10, "calls per window")
    compare: str = opt("torch", "torch: PyTorch's kernels beside jaxadl's", choices=("torch", "none"))
    wait_idle: float = opt(120.0, "seconds to wait for an idle machine")
    json: str | None = opt(None, "write the figures to this file", shown="none")

    def __post_init__(self) -> None:
        check_positive(self, "batch_size", "windows", "calls")
        check_outputs(self)
        check_torch(self.compare)


def parse_args(argv: Sequence[str] | None) -> ConvLayersConfig:
    """The command line as a config (batch size filled in); bad values exit with code 2."""
    cfg = parse(ConvLayersConfig, argv, __doc__.split("\n\n")[0], prog="python -m benchmarks.conv_layers")
    return dataclasses.replace(cfg, batch_size=cfg.batch_size or cfg.bench.batch_size)


def arrays(batch: int, conv: Conv) -> tuple[np.ndarray, ...]:
    """Random input [B, H, W, Cin], kernel [k, k, Cin, Cout] and output gradient [B, H', W', Cout]."""
    rng = np.random.default_rng(0)
    k, out_side = conv.k, conv.side if conv.padding == "SAME" else conv.side - conv.k + 1
    x = rng.standard_normal((batch, conv.side, conv.side, conv.cin), np.float32)
    w = rng.standard_normal((k, k, conv.cin, conv.cout), np.float32) / np.float32(np.sqrt(k * k * conv.cin))
    g = rng.standard_normal((batch, out_side, out_side, conv.cout), np.float32)
    return x, w, g


def jax_ops(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, padding: str = "VALID"
) -> dict[str, Callable[[], Any]]:
    """The three compiled programs of one convolution (NHWC/HWIO, as flax), each a no-argument call."""
    x, w, g = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    fwd = jax.jit(conv)
    dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    return {
        "forward": lambda: fwd(x, w).block_until_ready(),
        "dx": lambda: dx(x, w, g).block_until_ready(),
        "dw": lambda: dw(x, w, g).block_until_ready(),
    }


def torch_ops(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, padding: str = "VALID"
) -> dict[str, Callable[[], Any]]:
    """The ATen kernels autograd runs for the same convolution (NCHW/OIHW), each a no-argument call."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    g = torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2)))
    backward = torch.ops.aten.convolution_backward
    pad = (w.shape[-1] - 1) // 2 if padding == "SAME" else 0  # odd kernels: SAME is symmetric

    def grad(mask: list[bool]) -> Callable[[], Any]:
        return lambda: backward(g, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

    def fwd() -> Any:
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, padding=pad)

    return {"forward": fwd, "dx": grad([True, False, False]), "dw": grad([False, True, False])}


def time_call(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def profile(args: ConvLayersConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Median ms per call: {layer: {op: {side: ms}}}, windows alternating between the sides."""
    if args.compare == "torch":
        import torch

        torch.set_num_threads(num_cores())
    out: dict[str, dict[str, dict[str, float]]] = {}
    for conv in args.bench.convolutions():
        data = arrays(args.batch_size, conv)
        sides = {"jaxadl": jax_ops(*data, conv.padding)}
        if args.compare == "torch":
            sides["torch"] = torch_ops(*data, conv.padding)
        name = conv.name
        out[name] = {}
        for op in OPS:
            for ops in sides.values():  # compile and warm up
                ops[op]()
                ops[op]()
            windows: dict[str, list[float]] = {s: [] for s in sides}
            for _ in range(args.windows):
                for s, ops in sides.items():
                    windows[s].append(time_call(ops[op], args.calls) * 1e3)
            out[name][op] = {s: float(np.median(w)) for s, w in windows.items()}
    return out


def print_table(result: dict[str, Any]) -> None:
    layers = result["layers_ms"]
    both = result["compare"] == "torch"
    head = "| layer | op | jaxadl ms |" + (" PyTorch ms | jaxadl / PyTorch |" if both else "")
    print(f"\n{result['model']}, batch {result['batch_size']}, median of {result['windows']} windows\n{head}")
    print("|---|---|---|" + ("---|---|" if both else ""))
    for name, ops in layers.items():
        for op, ms in ops.items():
            row = f"| {name} | {op} | {ms['jaxadl']:.2f} |"
            if both:
                row += f" {ms['torch']:.2f} | {ms['jaxadl'] / ms['torch']:.2f} |"
            print(row)
    totals = result["total_ms"]
    row = f"| a training step's, x counts | all but the first dx | {totals['jaxadl']:.2f} |"
    print(row + (f" {totals['torch']:.2f} | {totals['jaxadl'] / totals['torch']:.2f} |" if both else ""))
    if result["busy"]:
        print(f"\n!! THE MACHINE WAS BUSY ({result['busy']}): not valid for a comparison !!")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = idle_machine(args.wait_idle)
    timed = profile(args)
    sides = ["jaxadl"] + (["torch"] if args.compare == "torch" else [])
    # a step computes every convolution's forward, dx and dw, times its count, except the first
    # layer's dx (its input is the image)
    convolutions = args.bench.convolutions()
    first, counts = convolutions[0].name, {c.name: c.count for c in convolutions}
    total = {
        s: sum(
            counts[name] * ms[s]
            for name, ops in timed.items()
            for op, ms in ops.items()
            if (name, op) != (first, "dx")
        )
        for s in sides
    }
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "windows": args.windows,
        "compare": args.compare,
        "layers_ms": timed,
        "total_ms": total,
        "machine": info,
    }
    print_table(stamped(result, module="conv_layers", argv=argv, json_path=args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

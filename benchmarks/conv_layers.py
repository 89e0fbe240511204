"""Per-layer profile of the CNN's convolutions: forward, input gradient and kernel gradient, beside PyTorch.

    python -m benchmarks.conv_layers                      # batch 128, jaxadl and PyTorch
    python -m benchmarks.conv_layers --batch-size=32 --compare=none

Each of SignCNN's three convolutions is timed alone at the shapes it has in the network (28x28 input):
the forward convolution, the gradient with respect to its input (dx) and with respect to its kernel (dw),
each a separately compiled XLA program on jaxadl's side (``lax.conv_general_dilated`` in flax's NHWC/HWIO
layout, gradients from ``jax.vjp``) and the ATen kernels PyTorch's autograd calls on the other
(``conv2d``, ``convolution_backward`` with one output each, NCHW). This says which convolution and which
direction keep ``benchmarks.step_time``'s whole step slower or faster than PyTorch's. Windows alternate
between the sides; the median of ``--windows`` is given. A figure counts only from an idle machine (see
``benchmarks.step_time``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.step_time import (
    TORCH_HINT,
    busy_reason,
    load_now,
    machine_info,
    num_cores,
    torch_available,
    wait_for_idle,
)

# name, input side, in channels, out channels, kernel side: SignCNN on 28x28x3 inputs (VALID padding)
LAYERS = (
    ("conv1 5x5 3->64", 28, 3, 64, 5),
    ("conv2 5x5 64->32", 24, 64, 32, 5),
    ("conv3 3x3 32->32", 12, 32, 32, 3),
)
OPS = ("forward", "dx", "dw")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.conv_layers",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    p.add_argument("--windows", type=int, default=5, help="timed windows per op and side (default: 5)")
    p.add_argument("--calls", type=int, default=10, help="calls per window (default: 10)")
    p.add_argument("--compare", choices=("torch", "none"), default="torch", help="default: %(default)s")
    p.add_argument("--wait-idle", type=float, default=120.0, help="seconds to wait for an idle machine")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    for name in ("batch_size", "windows", "calls"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.compare == "torch" and not torch_available():
        p.error(f"{TORCH_HINT}, or --compare=none")
    return args


def arrays(batch: int, side: int, cin: int, cout: int, k: int) -> tuple[np.ndarray, ...]:
    """Random input [B, H, W, Cin], kernel [k, k, Cin, Cout] and output gradient [B, H', W', Cout]."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, side, side, cin), np.float32)
    w = rng.standard_normal((k, k, cin, cout), np.float32) / np.float32(np.sqrt(k * k * cin))
    g = rng.standard_normal((batch, side - k + 1, side - k + 1, cout), np.float32)
    return x, w, g


def jax_ops(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The three compiled programs of one convolution (NHWC/HWIO, as flax), each a no-argument call."""
    x, w, g = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    fwd = jax.jit(conv)
    dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    return {
        "forward": lambda: fwd(x, w).block_until_ready(),
        "dx": lambda: dx(x, w, g).block_until_ready(),
        "dw": lambda: dw(x, w, g).block_until_ready(),
    }


def torch_ops(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The ATen kernels autograd runs for the same convolution (NCHW/OIHW), each a no-argument call."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    g = torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2)))
    backward = torch.ops.aten.convolution_backward

    def grad(mask: list[bool]) -> Callable[[], Any]:
        return lambda: backward(g, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask)

    def fwd() -> Any:
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w)

    return {"forward": fwd, "dx": grad([True, False, False]), "dw": grad([False, True, False])}


def time_call(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def profile(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """Median ms per call: {layer: {op: {side: ms}}}, windows alternating between the sides."""
    if args.compare == "torch":
        import torch

        torch.set_num_threads(num_cores())
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, side, cin, cout, k in LAYERS:
        data = arrays(args.batch_size, side, cin, cout, k)
        sides = {"jaxadl": jax_ops(*data)}
        if args.compare == "torch":
            sides["torch"] = torch_ops(*data)
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
    print(f"\nbatch {result['batch_size']}, median of {result['windows']} windows\n{head}")
    print("|---|---|---|" + ("---|---|" if both else ""))
    for name, ops in layers.items():
        for op, ms in ops.items():
            row = f"| {name} | {op} | {ms['jaxadl']:.2f} |"
            if both:
                row += f" {ms['torch']:.2f} | {ms['jaxadl'] / ms['torch']:.2f} |"
            print(row)
    totals = result["total_ms"]
    row = f"| a training step's | all but conv1 dx | {totals['jaxadl']:.2f} |"
    print(row + (f" {totals['torch']:.2f} | {totals['jaxadl'] / totals['torch']:.2f} |" if both else ""))
    if result["busy"]:
        print(f"\n!! THE MACHINE WAS BUSY ({result['busy']}): not valid for a comparison !!")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cores = num_cores()
    wait_for_idle(args.wait_idle, cores)
    info, before = machine_info(), load_now()
    layers = profile(args)
    after = load_now()
    sides = ["jaxadl"] + (["torch"] if args.compare == "torch" else [])
    # conv1's dx is never needed in training (its input is the image); the total leaves it out
    total = {
        s: sum(
            ms[s]
            for name, ops in layers.items()
            for op, ms in ops.items()
            if (name, op) != (LAYERS[0][0], "dx")
        )
        for s in sides
    }
    busy = busy_reason(before, after, cores)
    result = {
        "command": "python -m benchmarks.conv_layers " + " ".join(sys.argv[1:] if argv is None else argv),
        "batch_size": args.batch_size,
        "windows": args.windows,
        "compare": args.compare,
        "layers_ms": layers,
        "total_ms": total,
        "machine": info,
        "load_before": before,
        "load_after": after,
        "busy": busy,
        "valid_for_comparison": busy is None,
    }
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Step time of jaxadl's real train step, optionally side by side with the same model in PyTorch.

    python -m benchmarks.step_time --model=cnn                               # batch 128, Adam
    python -m benchmarks.step_time --model=cnn --batch-norm --compare=torch  # + PyTorch, alternating windows
    python -m benchmarks.step_time --model=unet --batch-size=4 --compare=torch   # width 16, depth 4, 256 px
    python -m benchmarks.step_time --model=cnn --epoch                       # + on-device epoch vs host loop
    python -m benchmarks.step_time --model=cnn --trials-together=3           # + 3 trials as one program vs apart

What is timed: ``jaxadl.step.train_step`` (uint8 batch -> scaled input -> forward, loss, backward,
optimizer update, metric) for the step spec ``jaxadl.Trainer`` would build (``benchmarks.jax_side``),
jitted with the state donated and compiled ahead of time (compile time is reported apart). After ``--warmup`` steps, ``--windows`` windows of ``--steps-per-window`` steps each are
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
batch from host numpy arrays and ``device_put``s it every step, with the same compiled step
(``benchmarks.epoch_time``).

The JSON (``--json``) holds the command, the configuration, the machine (device, cores, threads per side,
load average and runnable processes before and after, versions, XLA_FLAGS) and every figure of the table.
A speed figure counts only from an idle machine: under load PyTorch's threads lose far more than XLA's,
so a ratio taken on a busy machine flatters jaxadl. The run waits up to ``--wait-idle`` seconds for the
1-minute load to fall to half the cores, and when the machine was still busy (load above half the cores
before the first window, or more runnable processes than cores + 1 before or after) the table says so
loudly and the JSON has ``"valid_for_comparison": false`` with the reason in ``"busy"`` (the same stamp
as the other benchmarks': ``benchmarks.common.stamped``).

Modules: ``step_config`` (the flags), ``models`` (the networks, by ``--model``), ``jax_side`` and
``torch_side`` (the two steps), ``epoch_time`` (``--epoch``), ``common`` (machine, load, stamp).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from benchmarks.common import idle_machine, spread, stamped
from benchmarks.epoch_time import epoch_comparison
from benchmarks.jax_side import JaxSide, peak_flops
from benchmarks.step_config import StepTimeConfig, parse_args
from benchmarks.together_time import together_comparison
from benchmarks.torch_side import TorchSide

__all__ = ["StepTimeConfig", "main", "parse_args"]


# -- timing: warm-up, then windows alternating between the sides -------------------------------------------
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


# -- report ------------------------------------------------------------------------------------------------
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
    if "together" in result:
        t = result["together"]
        print(
            f"{t['trials']} trials, one epoch of {t['steps']} steps each: together {t['together_s_per_trial']:.3f} s "
            f"per trial (vmap={t['vectorize']}), one by one {t['apart_s_per_trial']:.3f} s per trial: "
            f"together / apart = {t['together_over_apart']:.3f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = idle_machine(args.wait_idle)
    jax_side = JaxSide(args)
    sides: list[Any] = [jax_side]
    if args.compare == "torch":
        torch_side = TorchSide(args, jax_side.spec.model, jax_side.initial_variables)
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
        result["epoch"] = epoch_comparison(args, jax_side)
    if args.trials_together:
        result["together"] = together_comparison(args, jax_side)
    if phases is not None:
        result["phases_ms"] = phases
    result = stamped(result, module="step_time", argv=argv, json_path=args.json)
    print_table(result)
    if phases is not None:
        print_phases(phases)
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

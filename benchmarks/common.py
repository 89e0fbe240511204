"""What every benchmark shares: the config checks, the machine (cores, load, versions), waiting for it to be
idle, and the stamp a result gets before it is printed and written (the load after, whether it counts).

A speed figure counts only from an idle machine: under load PyTorch's threads lose far more than XLA's, so a
ratio taken on a busy machine flatters jaxadl. A benchmark waits up to its ``--wait-idle`` seconds for the
1-minute load to fall to half the cores (`idle_machine`); `stamped` marks the result not valid for a
comparison, with the reason, when the machine was still busy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxadl

TORCH_HINT = "PyTorch is not installed; pip install .[torch] (or pip install torch) for --compare=torch"


# -- config checks ---------------------------------------------------------------------------------------------
def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def check_positive(cfg: Any, *names: str) -> None:
    """A benchmark config's counts must be >= 1 where set (None takes the model's default)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def check_outputs(cfg: Any) -> None:
    """--wait-idle >= 0, and --json a file in an existing folder: checked before minutes of timing, not after."""
    if not cfg.wait_idle >= 0:
        raise ValueError(f"wait_idle must be >= 0, got {cfg.wait_idle}")
    if cfg.json:
        path = Path(cfg.json)
        if path.is_dir():
            raise ValueError(f"json {path} is a folder; name a file to write")
        if not path.parent.is_dir():
            raise ValueError(f"json {path}: the folder {path.parent} does not exist")


def check_torch(compare: str) -> None:
    """--compare=torch needs torch installed (ValueError with the hint otherwise)."""
    if compare == "torch" and not torch_available():
        raise ValueError(f"{TORCH_HINT}, or --compare=none")


# -- the machine -------------------------------------------------------------------------------------------------
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


def machine_info() -> dict[str, Any]:
    """The device, cores, versions, XLA_FLAGS and the load now (`load_start`)."""
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


def idle_machine(wait_seconds: float) -> dict[str, Any]:
    """Wait up to `wait_seconds` for an idle machine, then describe it (machine_info) before the first timing."""
    wait_for_idle(wait_seconds, num_cores())
    return machine_info()


# -- the stamp on a result -------------------------------------------------------------------------------------
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


def stamped(
    result: dict[str, Any], *, module: str, argv: Sequence[str] | None, json_path: str | None = None
) -> dict[str, Any]:
    """`result` (its "machine" from `idle_machine`) with the command that made it, the load before and now,
    and whether it is valid for a comparison (`busy_reason`); written to `json_path` when given.

    The load now also goes into the machine's record (`load_end`, `load_avg_end`)."""
    machine = result["machine"]
    if hasattr(os, "getloadavg"):
        machine["load_avg_end"] = list(os.getloadavg())
    before, after = machine["load_start"], load_now()
    machine["load_end"] = after
    busy = busy_reason(before, after, machine["cores"])
    command = f"python -m benchmarks.{module} " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, **result, "load_before": before, "load_after": after}
    result.update(busy=busy, valid_for_comparison=busy is None)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result


def spread(seconds_per_call: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of per-call times over windows, in milliseconds."""
    ms = np.asarray(seconds_per_call) * 1e3
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }

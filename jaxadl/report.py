"""What the task types' result tables share (the tables themselves: `table` of each type in jaxadl.tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def by_variant(trials: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Trial records grouped by variant, in the order the variants first appear."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        out.setdefault(t["variant"], []).append(t)
    return out


def mean_std(values: list[float]) -> str:
    """`mean ± std` of several values, the value itself for one, "—" for none."""
    if not values:
        return "—"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

"""Per-example metrics computed on the device, aggregated on the host (mean, std, min)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def correct(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """1.0 where the arg-max class equals the label, per example."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def f1_per_image(logits: jnp.ndarray, masks: jnp.ndarray, threshold: float = 0.5) -> jnp.ndarray:
    """Dice/F1 of the thresholded sigmoid per image; an empty prediction of an empty mask scores 1."""
    pred = (logits > jnp.log(threshold / (1.0 - threshold))).astype(jnp.float32)
    truth = (masks > 0).astype(jnp.float32)
    axes = tuple(range(1, pred.ndim))
    tp = jnp.sum(pred * truth, axes)
    fp = jnp.sum(pred * (1.0 - truth), axes)
    fn = jnp.sum((1.0 - pred) * truth, axes)
    denom = 2.0 * tp + fp + fn
    return jnp.where(denom > 0, 2.0 * tp / jnp.maximum(denom, 1.0), 1.0)


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, std (population), min and max of a per-example metric, as the report's table 2.1."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }

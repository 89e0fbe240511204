"""Evaluation-mode forward passes: logits (optionally test-time augmented), per-example metrics, batching.

Shared by training (Trainer.evaluate, Trainer.predict) and by a saved run's predictor (jaxadl.predict).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadl.tasks import Task
from jaxadl.tta import tta_logits


def model_variables(params: Any, batch_stats: Any) -> dict[str, Any]:
    """The variables flax's apply takes: batch-norm statistics only when the model has some."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def predict_logits(
    model: nn.Module, params: Any, batch_stats: Any, x: jnp.ndarray, tta: bool = False
) -> jnp.ndarray:
    """Evaluation-mode logits of normalised inputs x, optionally averaged over TTA views (jittable)."""
    apply = lambda inputs: model.apply(model_variables(params, batch_stats), inputs, train=False)
    return tta_logits(apply, x) if tta else apply(x)


def batch_metrics(
    model: nn.Module,
    task: Task,
    params: Any,
    batch_stats: Any,
    images: jnp.ndarray,
    labels: jnp.ndarray,
    batch: int,
    tta: bool = False,
    shard: Callable[[jnp.ndarray], jnp.ndarray] = lambda a: a,
) -> dict[str, jnp.ndarray]:
    """Per-example task metrics of uint8 images, a lax.scan over batches of `batch` (len(images) a multiple)."""
    xs = images.reshape(-1, batch, *images.shape[1:])
    ys = labels.reshape(-1, batch, *labels.shape[1:])

    def body(_, pair):
        x, y = shard(pair[0]), shard(pair[1])
        logits = predict_logits(model, params, batch_stats, task.inputs(x), tta)
        return None, task.metrics(logits, y)

    _, out = jax.lax.scan(body, None, (xs, ys))
    return jax.tree.map(lambda a: a.reshape(-1), out)


def in_batches(fn: Callable[[np.ndarray], jax.Array], images: np.ndarray, batch_size: int) -> np.ndarray:
    """fn over consecutive slices of `images` (the last may be shorter), joined on the host."""
    return np.concatenate(
        [np.asarray(fn(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    )

"""Evaluation on the device(s): a split put once, padded to whole batches; per-example metrics from the step
module's forward pass; `evaluate` finishes as the task asks (on the device, or from logits on the host)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import numpy as np

from jaxadl import step
from jaxadl.data.base import Split
from jaxadl.parallel import make_mesh, replicated
from jaxadl.step import StepSpec, in_batches
from jaxadl.tasks import Evaluation


def put(split: Split, pad_to: int = 1, sharding: Any = None) -> tuple[jax.Array, jax.Array, int]:
    """Copy a split to the device(s) once, padded with zeros to a multiple of `pad_to` examples."""
    n = len(split)
    total = math.ceil(n / pad_to) * pad_to
    x, y = split.images, split.labels
    if total != n:
        x = np.concatenate([x, np.zeros((total - n, *x.shape[1:]), x.dtype)])
        y = np.concatenate([y, np.zeros((total - n, *y.shape[1:]), y.dtype)])
    return jax.device_put(x, sharding), jax.device_put(y, sharding), n


class Evaluator:
    """Jitted evaluation of one step spec: per-example metrics of a padded split, logits of images.

    Methods take (params, batch_stats) to evaluate with: a trained state's `eval_variables()`, or a saved run's."""

    def __init__(self, spec: StepSpec, batch_size: int = 500):
        mesh = spec.mesh if spec.mesh is not None else make_mesh()
        self.spec, self.batch_size = dataclasses.replace(spec, mesh=mesh), batch_size
        self._replicated = replicated(mesh)
        self.eval_batch = math.ceil(batch_size / mesh.devices.size) * mesh.devices.size
        # results replicated, so every process (also of a multi-host run) can read them back
        metrics = functools.partial(step.eval_metrics, self.spec, batch=self.eval_batch)
        self.evaluate_padded = jax.jit(metrics, out_shardings=self._replicated)
        self._logits = jax.jit(functools.partial(step.eval_logits, self.spec), out_shardings=self._replicated)

    def put(self, split: Split) -> tuple[jax.Array, jax.Array, int]:
        """An evaluation split on the device(s), padded to whole evaluation batches."""
        return put(split, self.eval_batch, self._replicated)

    def metrics(self, variables: tuple[Any, Any], data: Split | tuple) -> dict[str, np.ndarray]:
        """Per-example metrics (loss, accuracy or f1) over a whole split, padding removed."""
        x, y, n = self.put(data) if isinstance(data, Split) else data
        out = self.evaluate_padded(*variables, x, y)
        return {k: np.asarray(v)[:n] for k, v in out.items()}

    def logits(self, variables: tuple[Any, Any], images: np.ndarray) -> np.ndarray:
        """Logits for uint8 images [N, H, W, C], evaluated in batches of `batch_size`."""
        put_ = lambda x: jax.device_put(x, self._replicated)  # the same images in every process
        return in_batches(lambda x: self._logits(*variables, put_(x)), images, self.batch_size)


def evaluate(
    evaluator: Evaluator, variables: tuple[Any, Any], split: Split, cases: list[str] | None = None
) -> Evaluation:
    """A model on a split, as its task evaluates it: on the device from sums, or (a task that finishes on the
    host, as segmentation's clean-up does) from the logits. `cases`: the examples' names."""
    task = evaluator.spec.task
    if task.finishes_on_host:
        cases = cases if cases is not None else [str(i) for i in range(len(split))]
        return task.evaluate_logits(evaluator.logits(variables, split.images), split, cases)
    return Evaluation(evaluator.metrics(variables, split), {})

"""``--epoch`` of the step benchmark: a whole epoch the jaxadl way against a loop fed from the host.

This part measures the trainer's epoch by design, so it runs ``jaxadl.trainer.Trainer`` (data put on the
device once, ``Trainer.train_epoch`` over a device-drawn permutation: one scanned program, or on CPU a
Python loop of jitted pieces), where the step benchmark itself needs only ``jaxadl.step``. The host loop
gathers each batch from numpy arrays and ``device_put``s it every step, with the step benchmark's compiled
step.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from benchmarks.jax_side import JaxSide, state_from_variables
from benchmarks.step_config import StepTimeConfig
from jaxadl.optim import OptimConfig
from jaxadl.trainer import TrainConfig, Trainer


def train_config(args: StepTimeConfig) -> TrainConfig:
    """One epoch at the benchmark's batch size, optimizer and seed (the step's spec has the same optimizer)."""
    return TrainConfig(
        epochs=1, batch_size=args.batch_size, optim=OptimConfig(args.optimizer, args.lr), seed=args.seed
    )


def epoch_comparison(args: StepTimeConfig, side: JaxSide) -> dict[str, Any]:
    """Seconds per epoch: on-device data + Trainer.train_epoch vs host batches device_put every step.

    The host loop runs `side`'s compiled train step (same model, optimizer and batch shape); both start
    from its initial variables.
    """
    n, b = args.batch_size * args.epoch_steps, args.batch_size
    split = args.bench.random_split(n, args.image_size, args.seed)
    trainer = Trainer(side.spec.model, side.spec.task, train_config(args), n)
    state = state_from_variables(trainer.tx, side.initial_variables, args.seed)
    x_dev, y_dev, _ = trainer.put_train(split)
    t0 = time.perf_counter()
    trainer.compile(state, x_dev, y_dev)
    compile_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)

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
            state, metrics = side.step(state, xb, yb)
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

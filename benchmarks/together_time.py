"""``--trials-together=N`` of the step benchmark: N trials' epochs as one program against N epochs one by one.

Both sides are ``jaxadl`` trainers on the same random data, model and optimizer: ``TrialsTrainer`` (a stacked
state; on CPU the trials unrolled in one program, elsewhere vmapped; ``--vectorize`` forces vmap) and one
``Trainer`` per trial. The figure that matters is seconds per trial, together over apart (below 1: together
is faster).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from benchmarks.epoch_time import train_config
from benchmarks.jax_side import JaxSide
from benchmarks.step_config import StepTimeConfig
from jaxadl.together import TrialsTrainer
from jaxadl.trainer import Trainer


def together_comparison(args: StepTimeConfig, side: JaxSide) -> dict[str, Any]:
    """Seconds per trial of one epoch of `--epoch-steps` steps: `--trials-together` trials at once vs apart."""
    trials, n = args.trials_together, args.batch_size * args.epoch_steps
    split = args.bench.random_split(n, args.image_size, args.seed)
    cfg, model, task = train_config(args), side.spec.model, side.spec.task
    seeds = [args.seed + t for t in range(trials)]
    together = TrialsTrainer(model, task, cfg, n, seeds=seeds, vectorize=args.vectorize or None)
    apart = [Trainer(model, task, cfg, n) for _ in seeds]
    x, y, _ = together.put_train(split)
    states: dict[str, Any] = {"together": together.init(args.input_shape)}
    fresh = [t.fresh_state(args.input_shape, s) for t, s in zip(apart, seeds, strict=True)]
    states["apart"] = [jax.device_put(s, together._replicated) for s in fresh]  # as Trainer.init places it
    t0 = time.perf_counter()
    together.compile(states["together"], x, y)
    compile_together = time.perf_counter() - t0
    t0 = time.perf_counter()
    apart[0].compile(states["apart"][0], x, y)
    compile_apart = time.perf_counter() - t0

    def run_together() -> None:
        states["together"] = jax.block_until_ready(together.train_epoch(states["together"], x, y))[0]

    def run_apart() -> None:  # one trainer's programs serve every trial: the same shapes, compiled once
        states["apart"] = [jax.block_until_ready(apart[0].train_epoch(s, x, y))[0] for s in states["apart"]]

    run_together(), run_apart()  # warm-up
    times: dict[str, list[float]] = {"together": [], "apart": []}
    for _ in range(max(args.windows, 1)):
        for name, fn in (("together", run_together), ("apart", run_apart)):
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / trials)
    per_trial = {name: float(np.median(v)) for name, v in times.items()}
    return {
        "trials": trials,
        "steps": args.epoch_steps,
        "vectorize": together.vectorize,
        "compile_together_s": compile_together,
        "compile_one_trial_s": compile_apart,
        "together_s_per_trial": per_trial["together"],
        "apart_s_per_trial": per_trial["apart"],
        "together_over_apart": per_trial["together"] / per_trial["apart"],
        "windows_s_per_trial": times,
    }

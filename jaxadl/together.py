"""Several trials of one variant trained as one program: a stacked state, one step for all of them.

Trials differ only in their seed and the step is pure, so each epoch program can take a state whose every
leaf has a leading trial axis. On an accelerator the step is `jax.vmap`ped over that axis (a small CNN
leaves most of a GPU idle); on CPU it is unrolled inside the same program, because XLA:CPU runs a
vmapped convolution as a grouped one, slower than separate ones. Each trial's losses and results equal
its separate `fit` within float tolerance (tests/test_together.py); checkpoints are per trial, as
`fit` writes them, so a run started together may resume one trial at a time and the other way round.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxadl.checkpoint import Checkpointer, CheckpointError
from jaxadl.data.base import Split
from jaxadl.progress import format_epoch
from jaxadl.step import TrainState
from jaxadl.tasks import Task
from jaxadl.train import (
    DivergenceError,
    FitResult,
    RunSoFar,
    epoch_record,
    first_divergence,
    resume_run,
    validate,
)
from jaxadl.trainer import TrainConfig, Trainer


def stack(trees: Sequence[Any]) -> Any:
    """Pytrees of one structure -> one pytree whose leaves have a leading axis over them."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Entry `index` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def over_trials(fn: Callable, in_axes: tuple[int | None, ...], trials: int, vectorize: bool) -> Callable:
    """`fn` over the leading trial axis of the arguments whose in_axes entry is 0 (None: shared by all).

    vectorize: jax.vmap; else the trials one after another inside the calling program (unrolled)."""
    if vectorize:
        return jax.vmap(fn, in_axes=in_axes)

    def unrolled(*args: Any) -> Any:
        pick = lambda t: [a if axis is None else unstack(a, t) for a, axis in zip(args, in_axes, strict=True)]
        return stack([fn(*pick(t)) for t in range(trials)])

    return unrolled


class TrialsTrainer(Trainer):
    """A Trainer whose epoch programs train `len(seeds)` trials at once on a stacked state.

    The epoch's per-step metrics come back as [steps, trials]; everything else is the Trainer's."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        num_train: int,
        *,
        seeds: Sequence[int],
        vectorize: bool | None = None,
        scan: bool | None = None,
        mesh: Mesh | None = None,
    ):
        if len(seeds) < 1:
            raise ValueError("trials together needs at least one seed")
        self.seeds = tuple(int(s) for s in seeds)
        self.vectorize = vectorize if vectorize is not None else jax.default_backend() != "cpu"
        self._over = functools.partial(over_trials, trials=len(self.seeds), vectorize=self.vectorize)
        super().__init__(model, task, cfg, num_train, scan=scan, mesh=mesh)

    @property
    def trials(self) -> int:
        return len(self.seeds)

    def init(self, input_shape: tuple[int, ...]) -> TrainState:
        """Fresh states for every seed, stacked."""
        states = [self.fresh_state(input_shape, seed) for seed in self.seeds]
        return jax.device_put(stack(states), self._replicated)

    def _order(self, state: TrainState) -> jnp.ndarray:
        return jnp.swapaxes(self._over(super()._order, (0,))(state), 0, 1)  # [steps, trials, batch]

    def _indexed_step(self, state: TrainState, idx: jnp.ndarray, data: tuple):
        one = lambda s, i: Trainer._indexed_step(self, s, i, data)
        return self._over(one, (0, 0))(state, idx)

    def _zero_sums(self, state: TrainState) -> dict[str, Any]:
        return self._over(super()._zero_sums, (0,))(state)

    def _add_chunk(self, sums: dict[str, Any], i, state: TrainState, data: tuple):
        one = lambda acc, s: Trainer._add_chunk(self, acc, i, s, data)
        return self._over(one, (0, 0))(sums, state)

    def _finish(self, state: TrainState, sums: dict[str, Any]):
        state, metrics = self._over(super()._finish, (0, 0))(state, sums)
        return state, jax.tree.map(lambda a: a.T, metrics)  # [trials, 1] -> [1, trials], as the steps' are


def _resume_trials(
    ckpts: list[Checkpointer] | None, state: TrainState, cfg: TrainConfig
) -> tuple[TrainState, list[RunSoFar]]:
    """Every trial from the newest epoch that all of them saved (a kill between two trials' saves leaves
    one an epoch ahead; it repeats that epoch, which gives the same numbers), else fresh runs."""
    trials = jax.tree.leaves(state)[0].shape[0]
    if ckpts is None or all(c.last_epoch() is None for c in ckpts):
        return state, [
            RunSoFar(cfg.epochs, best_epoch=cfg.epochs, val_every=cfg.val_every) for _ in range(trials)
        ]
    shared = set.intersection(*(set(c.last.all_steps()) for c in ckpts))
    if not shared:
        saved = ", ".join(f"{c.directory.name}: {c.last_epoch()}" for c in ckpts)
        raise CheckpointError(
            f"trials trained together have no saved epoch in common ({saved}); resume them one by one"
        )
    common = max(shared)
    for c in ckpts:
        c.forget_after(common)
    restored = [resume_run(c, unstack(state, t), cfg, common) for t, c in enumerate(ckpts)]
    return stack([s for s, _ in restored]), [run for _, run in restored]


def _log_epoch(log: Callable[[str], None], seed: int, record: dict, cfg: TrainConfig, metric: str) -> None:
    log(f"  seed {seed}:" + format_epoch(record, cfg.epochs, metric)[1:])


def fit_trials(
    model: nn.Module,
    task: Task,
    train: Split,
    cfg: TrainConfig,
    val: Split | None = None,
    *,
    seeds: Sequence[int],
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_dirs: Sequence[str | Path] | None = None,
    keep: int = 2,
    resume: bool = False,
    vectorize: bool | None = None,
    trainer: TrialsTrainer | None = None,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> list[FitResult | DivergenceError]:
    """`fit` for one config and several seeds at once; one FitResult (or the DivergenceError) per seed.

    `on_epoch(index, record)` gets each trial's records (index into `seeds`), each epoch once; `checkpoint_dirs`
    holds one folder per seed, written as `fit` writes it (keeping two epochs at least). A trial that diverges stops being recorded and checkpointed;
    the others go on. Seconds in the records are each trial's share of the program's time. `trainer`: one
    built for these arguments (its evaluator is then reused by the caller)."""
    if cfg.select == "best" and (val is None or not len(val)):
        raise ValueError("select='best' chooses the epoch on validation data, but none was given")
    if checkpoint_dirs is not None and len(checkpoint_dirs) != len(seeds):
        raise ValueError(f"{len(checkpoint_dirs)} checkpoint folders for {len(seeds)} seeds")
    if trainer is None:
        trainer = TrialsTrainer(model, task, cfg, len(train), seeds=seeds, vectorize=vectorize)
    elif (trainer.model, trainer.task, trainer.cfg, trainer.num_train) != (model, task, cfg, len(train)):
        raise ValueError("the trainer passed to fit_trials was built for another model, task, config or data")
    elif trainer.seeds != tuple(seeds):
        raise ValueError(
            f"the trainer passed to fit_trials was built for seeds {trainer.seeds}, not {tuple(seeds)}"
        )
    # two epochs at least: a trial one save ahead of the others can always go back to theirs
    ckpts = [Checkpointer(d, max(keep, 2)) for d in checkpoint_dirs] if checkpoint_dirs is not None else None
    recorded = [(c.last_epoch() or 0) if resume else 0 for c in ckpts or ()] or [0] * len(seeds)
    state, runs = _resume_trials(ckpts if resume else None, trainer.init(train.images.shape[1:]), cfg)
    state = jax.device_put(state, trainer._replicated)
    data = trainer.put_train(train)[:2]
    val_dev = trainer.put_eval(val) if val is not None and len(val) else None
    t0 = time.perf_counter()
    trainer.compile(state, *data)
    compile_seconds = (time.perf_counter() - t0) / trainer.trials
    failed: dict[int, DivergenceError] = {}
    for epoch in range(int(state.step[0]) // trainer.steps_per_epoch + 1, cfg.epochs + 1):
        if len(failed) == trainer.trials:
            break
        last_good = jax.tree.map(jnp.copy, state)
        t = time.perf_counter()
        state, metrics = trainer.train_epoch(state, *data)
        metrics, seconds = jax.device_get(metrics), (time.perf_counter() - t) / trainer.trials
        for k in (k for k in range(trainer.trials) if k not in failed):
            t_trial, mine = time.perf_counter(), {name: np.asarray(v)[:, k] for name, v in metrics.items()}
            previous = unstack(last_good, k)
            if (bad := first_divergence(mine["loss"], int(previous.step))) is not None:
                failed[k] = DivergenceError(bad, previous)
                log(f"  seed {trainer.seeds[k]}: {failed[k]}; the other trials go on")
                continue
            record, one = epoch_record(trainer, mine, seconds, epoch), unstack(state, k)
            is_best = validate(trainer, one, val_dev, record, runs[k])
            runs[k].note(record, mine["loss"], seconds + time.perf_counter() - t_trial)
            record["eta_seconds"] *= trainer.trials - len(failed)  # the trials go on together: the program's
            if verbose:
                _log_epoch(log, trainer.seeds[k], record, cfg, task.main_metric)
            if ckpts is not None:
                ckpts[k].save(epoch, one, runs[k].meta(), is_best=is_best)
            if on_epoch is not None and epoch > recorded[k]:  # an epoch repeated after a resume: noted once
                on_epoch(k, record)
    for c in ckpts or ():
        c.close()
    return [
        failed.get(k) or _result(cfg, unstack(state, k), runs[k], compile_seconds)
        for k in range(trainer.trials)
    ]


def _result(cfg: TrainConfig, state: TrainState, run: RunSoFar, compile_seconds: float) -> FitResult:
    """A trial's FitResult: its selected state and epoch, history and step losses."""
    best = cfg.select == "best" and run.best is not None
    state, best_epoch = (run.best, run.best_epoch) if best else (state, cfg.epochs)
    return FitResult(state, run.history, np.asarray(run.step_losses, np.float32), compile_seconds, best_epoch)

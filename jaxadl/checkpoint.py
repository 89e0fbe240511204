"""Orbax checkpoints of a trial: the last N epochs and the best one by validation metric.

A checkpoint holds the whole TrainState (params, batch-norm statistics, optimizer state, step, RNG key;
the data order derives from key and step) plus the host-side history, so a resumed run repeats exactly
what an uninterrupted one would have done. Orbax writes to a temporary folder and renames it when
complete, so an interrupted save never looks like a checkpoint.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(Exception):
    """A checkpoint that cannot be restored (truncated, or from another model config); names the folder."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read back (truncated or partly written); names it."""


def _reason(e: BaseException) -> str:
    """An orbax error in one short line: its first line without TensorStore's spec (a page of JSON)."""
    first = (str(e).splitlines() or [""])[0].split(" [tensorstore_spec=")[0]
    return f"{type(e).__name__}: {first[:200]}{'...' if len(first) > 200 else ''}"


@contextlib.contextmanager
def _quiet_closed_loop() -> Iterator[None]:
    """Drop the "Event loop is closed" reports of a failed restore.

    When one read of a damaged checkpoint fails, orbax closes its event loop while TensorStore's other
    reads are still in flight; each then reports RuntimeError("Event loop is closed") to
    sys.unraisablehook, a traceback on stderr, some after the restore has failed. The filter stays after a
    failure for those; other reports go to the previous hook.
    """
    previous = sys.unraisablehook

    def hook(report: Any) -> None:
        if not (
            isinstance(report.exc_value, RuntimeError) and str(report.exc_value) == "Event loop is closed"
        ):
            previous(report)

    sys.unraisablehook = hook
    yield  # an exception here leaves the filter in place
    if sys.unraisablehook is hook:
        sys.unraisablehook = previous


class Checkpointer:
    """`last/` keeps the newest `keep` epochs, `best/` the single best epoch by validation metric."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False)
        best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
        self.last = ocp.CheckpointManager(self.directory / "last", options=opts)
        self.best = ocp.CheckpointManager(self.directory / "best", options=best_opts)

    @staticmethod
    def _args(state: Any, meta: dict[str, Any]) -> ocp.args.Composite:
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def save(self, epoch: int, state: Any, meta: dict[str, Any], is_best: bool = False) -> None:
        """Save epoch `epoch` (and as the best one when `is_best`)."""
        self.last.save(epoch, args=self._args(state, meta), force=True)
        if is_best:
            for step in self.best.all_steps():
                self.best.delete(step)
            self.best.save(epoch, args=self._args(state, meta), force=True)

    def _restore(
        self, manager: ocp.CheckpointManager, like: Any, step: int | None = None
    ) -> tuple[Any, dict[str, Any]] | None:
        if step is None and (step := manager.latest_step()) is None:
            return None
        if step not in manager.all_steps():
            raise CheckpointError(
                f"no checkpoint of epoch {step} in {manager.directory} (it keeps the last few)"
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        try:
            with _quiet_closed_loop():
                restored = manager.restore(step, args=args)
        except Exception as e:  # orbax raises many types for truncated or mismatched trees
            raise CheckpointError(
                f"cannot restore the checkpoint in {manager.directory}/{step}: {_reason(e)} "
                "(is it from another model config, or truncated?)"
            ) from e
        return restored.state, restored.meta

    def restore_last(self, like: Any, epoch: int | None = None) -> tuple[Any, dict[str, Any]] | None:
        """The newest checkpoint (or epoch `epoch`'s) as (state shaped like `like`, meta); None when there is none."""
        return self._restore(self.last, like, epoch)

    def last_epoch(self) -> int | None:
        """The newest saved epoch, or None."""
        return self.last.latest_step()

    def forget_after(self, epoch: int) -> None:
        """Delete the saved epochs after `epoch` (a run that goes back to `epoch` writes them again)."""
        for step in self.last.all_steps():
            if step > epoch:
                self.last.delete(step)

    def restore_best(self, like: Any) -> tuple[Any, dict[str, Any]] | None:
        """The best-by-validation checkpoint, or None."""
        return self._restore(self.best, like)

    def close(self) -> None:
        self.last.close()
        self.best.close()


def saved_epochs(directory: str | Path) -> list[int]:
    """The epochs saved under a trial's `last/` (or `best/`) folder, oldest first, without opening them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def restore_weights(directory: str | Path) -> dict[str, Any]:
    """The newest saved state in `directory` (a trial's `last/` or `best/`) as plain arrays, without
    knowing its model: what predict.load needs to rebuild a model from a run folder."""
    directory = Path(directory).absolute()
    mgr = ocp.CheckpointManager(directory)
    try:
        step = mgr.latest_step()
        if step is None:
            raise CheckpointError(f"no checkpoint in {directory}")
        try:
            with _quiet_closed_loop():
                restored = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        except Exception as e:  # orbax raises many types for truncated trees; e keeps their detail
            raise DamagedCheckpointError(
                f"cannot restore the checkpoint {directory}/{step}: it is damaged (truncated or partly "
                f"written; orbax raised {type(e).__name__})"
            ) from e
    finally:
        mgr.close()
    return restored.state

"""Signs of life during long work: the epoch line, its time estimate, and progress inside an epoch.

On a terminal the progress inside an epoch is a tqdm bar; in logs and CI (no terminal) it is a plain line
every `every_s` seconds, so a long epoch is never silent and a log is never flooded.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def format_epoch(record: dict[str, Any], epochs: int, metric: str) -> str:
    """One line per epoch: train loss and metric, validation, time, throughput and the time left."""
    val = (
        f" val_loss {record['val_loss']:.4f} val_{metric} {record[f'val_{metric}']:.4f}"
        if "val_loss" in record
        else ""
    )
    left = record.get("eta_seconds")
    eta = f", ~{format_seconds(left)} left" if left else ""
    return (
        f"  epoch {record['epoch']:3d}/{epochs} loss {record['train_loss']:.4f} {metric} "
        f"{record[f'train_{metric}']:.4f}{val} | {record['seconds']:.1f}s "
        f"{record['images_per_s']:.0f} img/s{eta}"
    )


def format_seconds(seconds: float) -> str:
    """42 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class StepProgress:
    """Called as progress(done, total, ...) after each step of an epoch; silent for short epochs."""

    def __init__(
        self, label: str, stream: IO[str] | None = None, every_s: float = 30.0, delay_s: float = 3.0
    ):
        self.label, self.every_s, self.delay_s = label, every_s, delay_s
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._start = self._last = None

    def __call__(self, done: int, total: int, *_: Any) -> None:
        now = time.perf_counter()
        if self._start is None or done == 1:
            self._start, self._last = now, now
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.label, unit="step", leave=False, file=self.stream,
                                 delay=self.delay_s)  # fmt: skip
            self._bar.update(done - self._bar.n)
        elif now - self._last >= self.every_s and done < total:
            self._last = now
            rate = (now - self._start) / done
            print(
                f"    {self.label}: {done}/{total} steps, {now - self._start:.0f} s, "
                f"~{format_seconds(rate * (total - done))} left in this epoch",
                file=self.stream,
                flush=True,
            )
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._start = None

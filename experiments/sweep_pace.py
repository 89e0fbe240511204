"""A sweep's progress line: how many runs have ended and, from the runs that ran whole, the time left."""

from __future__ import annotations

import threading

from jaxadl.progress import format_seconds


class SweepPace:
    """How far a sweep has got and, from the runs it started afresh and saw finish, the time left."""

    def __init__(self, runs: int, parallel: int):
        self.runs, self.parallel, self.count, self.skipped, self.whole = runs, parallel, 0, 0, []
        self._lock = threading.Lock()  # runs end on the pool's threads

    def not_started(self) -> None:
        """Count one run the sweep will not start (time limit, stop file): no longer to go."""
        with self._lock:
            self.skipped += 1

    def ended(self, seconds: float | None) -> str:
        """Count one more run ended (`seconds`: its time, if it ran whole here); the progress line."""
        with self._lock:
            self.count += 1
            if seconds is not None:
                self.whole.append(seconds)
            left = self.runs - self.count - self.skipped
            line = f"{self.count} of {self.runs} runs ended" + (
                f", {self.skipped} not started" if self.skipped else ""
            )
            if left and self.whole:
                each = sum(self.whole) / len(self.whole)
                at_once = min(self.parallel, left)
                line += (
                    f"; {left} to go, ~{format_seconds(each * left / at_once)} left at "
                    f"{format_seconds(each)} a run, {at_once} at a time"
                )
            return line

"""Test set-up: the fast XLA:CPU flags are applied by importing jaxadl before any JAX computation; a run
without PyTorch ends with one line saying how many tests that skipped and how to install it."""

import os

import pytest

import jaxadl  # noqa: F401

if os.environ.get("JAXADL_REQUIRE_TORCH") == "1":  # CI: the PyTorch parity tests must run, not skip
    import torch  # noqa: F401
from jaxadl import plots


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved during the test, by file name (the Figure objects, after saving)."""
    saved = {}
    original = plots._save

    def keep(fig, path):
        saved[str(path).rsplit("/", 1)[-1]] = fig
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


TORCH_SKIP = "could not import 'torch'"  # pytest.importorskip("torch")'s reason when torch is missing


def torch_skip_line(skipped_reports) -> str | None:
    """The line that explains the skips PyTorch's absence caused (None when it caused none)."""

    def reason(report) -> str:
        longrepr = report.longrepr
        return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)

    count = sum(TORCH_SKIP in reason(r) for r in skipped_reports)
    if not count:
        return None
    return (
        f"{count} skipped: PyTorch is not installed, and the parity and benchmark tests need it "
        "(the CPU wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    )


def pytest_terminal_summary(terminalreporter):
    line = torch_skip_line(terminalreporter.stats.get("skipped", []))
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)

"""Test set-up: the fast XLA:CPU flags are applied by importing jaxadl before any JAX computation."""

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

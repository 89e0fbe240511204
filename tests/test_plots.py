"""What the figures show: the series and labels handed to matplotlib, not the PNG's size."""

import subprocess
import sys

import numpy as np
import pytest

from jaxadl import plots
from tests.helpers import lines

RECORDS = [
    {"epoch": e, "train_loss": 1.0 / e, "train_eval_loss": 0.8 / e, "val_loss": 0.9 / e,
     "train_f1": 0.5 + e / 10, "val_f1": 0.4 + e / 10}
    for e in (1, 2, 3)
]  # fmt: skip


def test_history_labels_each_curve_with_what_it_is(tmp_path, figures):
    plots.history(
        RECORDS, "f1", "t", tmp_path / "h.png", loss_name="BCE", objective_name="BCE + 1 × soft Dice"
    )
    loss_ax, f1_ax = figures["h.png"].axes
    loss = lines(loss_ax)
    assert set(loss) == {
        "train objective: BCE + 1 × soft Dice",
        "train: BCE (augmented batches, during the epoch)",
        "val: BCE",
    }
    np.testing.assert_allclose(loss["val: BCE"], [0.9, 0.45, 0.3])
    np.testing.assert_allclose(loss["train: BCE (augmented batches, during the epoch)"], [0.8, 0.4, 0.8 / 3])
    f1 = lines(f1_ax)
    np.testing.assert_allclose(f1["val"], [0.5, 0.6, 0.7])
    np.testing.assert_allclose(f1["train (augmented batches, during the epoch)"], [0.6, 0.7, 0.8])
    assert f1_ax.get_ylabel() == "f1" and loss_ax.get_xlabel() == "epoch"


def test_same_objective_is_not_drawn_twice(tmp_path, figures):
    plots.history(RECORDS, "f1", "t", tmp_path / "h.png", loss_name="BCE", objective_name="BCE")
    assert len(figures["h.png"].axes[0].get_lines()) == 2


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_epoch_axes_have_whole_number_ticks(tmp_path, figures, epochs):
    records = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_f1": 0.5, "val_f1": 0.5}
               for e in range(1, epochs + 1)]  # fmt: skip
    plots.history(records, "f1", "t", tmp_path / "h.png")
    plots.loss_curve(np.linspace(1, 0, 10 * epochs), 10, "t", tmp_path / "l.png")
    plots.overlay({"loss": {"a": [np.ones(epochs)]}}, "t", tmp_path / "o.png")
    for name in ("h.png", "l.png", "o.png"):
        for ax in figures[name].axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)


def test_overlay_draws_the_mean_of_trials_per_variant(tmp_path, figures):
    panels = {
        "loss": {"a": [np.array([3.0, 2.0]), np.array([1.0, 0.0])], "b": [np.array([5.0, 4.0, 3.0])]},
        "val f1": {"a": [np.array([0.5, 0.7])]},
    }
    plots.overlay(panels, "t", tmp_path / "o.png")
    loss_ax, f1_ax = figures["o.png"].axes
    loss = lines(loss_ax)
    np.testing.assert_allclose(loss["a (2 trials)"], [2.0, 1.0])
    np.testing.assert_allclose(loss["b (1 trial)"], [5.0, 4.0, 3.0])
    assert loss_ax.get_ylabel() == "loss" and f1_ax.get_ylabel() == "val f1"


def test_plotting_leaves_the_matplotlib_backend_alone(tmp_path):
    """jaxadl draws on its own canvases: no pyplot, no backend switch at import or when saving."""
    code = (
        "import sys, matplotlib\n"
        "matplotlib.rcParams['backend'] = 'svg'\n"
        "import jaxadl, numpy as np\n"
        "from jaxadl import plots\n"
        f"plots.loss_curve(np.linspace(1, 0, 20), 5, 't', {str(tmp_path / 'l.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print(matplotlib.rcParams['backend'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svg" and (tmp_path / "l.png").stat().st_size > 1000

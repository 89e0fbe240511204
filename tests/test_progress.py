"""Signs of life: epoch lines with a time estimate, progress inside an epoch, and the CLI's plan."""

import io

import numpy as np
import pytest

from jaxadl import Classification, OptimConfig, Segmentation, SignCNN, TrainConfig, Trainer, fit, report
from jaxadl.progress import StepProgress, format_epoch, format_seconds
from tests.helpers import colour_squares

TRAIN = colour_squares(192, seed=0)
TASK = Classification(num_classes=10)
CFG = TrainConfig(epochs=2, batch_size=32, optim=OptimConfig("adam", 2e-3), eval_batch_size=96)


def test_format_epoch_and_seconds():
    rec = {"epoch": 3, "train_loss": 0.5, "train_f1": 0.9, "val_loss": 0.4, "val_f1": 0.95,
           "seconds": 80.0, "images_per_s": 1.4, "eta_seconds": 600.0}  # fmt: skip
    line = format_epoch(rec, 25, "f1")
    assert line.startswith("  epoch   3/25 loss 0.5000 f1 0.9000 val_loss 0.4000 val_f1 0.9500 | 80.0s")
    assert line.endswith("~10.0 min left")
    assert [format_seconds(s) for s in (42, 210, 7200)] == ["42 s", "3.5 min", "2.0 h"]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_step_progress_plain_lines_in_logs_and_a_bar_on_a_terminal():
    log = io.StringIO()
    progress = StepProgress("epoch 1/2", stream=log, every_s=0.0)
    for i in range(1, 5):
        progress(i, 4)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("    epoch 1/2: 1/4 steps")  # none for the last step
    assert "left in this epoch" in lines[-1]
    quiet = io.StringIO()
    slow = StepProgress("e", stream=quiet, every_s=3600.0)
    for i in range(1, 5):
        slow(i, 4)
    assert quiet.getvalue() == ""  # a short epoch stays silent
    term = FakeTerminal()
    bar = StepProgress("epoch 2/2", stream=term, delay_s=0.0)
    for i in range(1, 5):
        bar(i, 4)
    assert "epoch 2/2:" in term.getvalue() and "/4 [" in term.getvalue() and bar._bar is None  # closed


def test_fit_reports_every_step_and_epoch(capsys):
    trainer = Trainer(SignCNN(num_classes=10), TASK, CFG, len(TRAIN), scan=False)
    seen = []
    trainer.on_step = lambda done, total, loss: seen.append((done, total, float(loss)))
    result = fit(SignCNN(num_classes=10), TASK, TRAIN, CFG, trainer=trainer, verbose=False)
    assert [d for d, _, _ in seen] == [1, 2, 3, 4, 5, 6] * 2 and {t for _, t, _ in seen} == {6}
    np.testing.assert_allclose([loss for _, _, loss in seen], result.step_losses, rtol=1e-6)
    assert capsys.readouterr().out == ""  # quiet unless asked
    fit(SignCNN(num_classes=10), TASK, TRAIN, CFG, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert [line.split("|")[0].split()[:2] for line in out] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "left" in out[0] and "left" not in out[1]  # the estimate of what remains; none at the end
    assert result.history[0]["eta_seconds"] > 0 and result.history[-1]["eta_seconds"] == 0


def test_a_run_that_learned_nothing_says_so():
    from jaxadl.trials import _not_learned_note

    masks = np.zeros((2, 4, 4, 1), np.uint8)
    masks[0, :2] = 1  # half the pixels: all-foreground F1 2p/(1+p) = 2/3
    assert report.for_task(Segmentation()).chance_level(masks) == pytest.approx((2 / 3 + 0.0) / 2)
    assert report.for_task(Classification()).chance_level(np.array([1, 1, 1, 2])) == 0.75
    cfg = TrainConfig(epochs=2, batch_size=4, optim=OptimConfig("adam", 1e-3, schedule="onecycle"))
    note = _not_learned_note(cfg, 28, "f1", 0.0, 1 / 3)
    assert "no better than chance (0.3333)" in note and "56 optimizer steps, 11 of them warming" in note
    assert _not_learned_note(cfg, 28, "f1", 0.9, 1 / 3) == ""

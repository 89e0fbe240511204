"""--val-every / TrainConfig.val_every: validation after every N-th epoch and the last, training unchanged."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import cnn, sweep, unet
from jaxadl import Classification, OptimConfig, SignCNN, TrainConfig, fit, plots
from jaxadl.data import Dataset
from jaxadl.experiment import plan
from jaxadl.report import variant_panels
from jaxadl.together import fit_trials
from jaxadl.trials import Variant
from tests.helpers import colour_squares

TRAIN, VAL = colour_squares(96, seed=0), colour_squares(40, seed=1)
TASK = Classification(num_classes=10)
MODEL = SignCNN(num_classes=10)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=5, batch_size=32, optim=OptimConfig("adam", 3e-3), eval_batch_size=40)
    return TrainConfig(**{**base, **kw})


def _validated(history) -> list[int]:
    return [r["epoch"] for r in history if "val_accuracy" in r]


def test_fit_validates_every_nth_epoch_and_the_last_and_trains_the_same():
    every = fit(MODEL, TASK, TRAIN, _cfg(select="best"), VAL)
    sparse = fit(MODEL, TASK, TRAIN, _cfg(select="best", val_every=2), VAL)
    assert _validated(every.history) == [1, 2, 3, 4, 5]
    assert _validated(sparse.history) == [2, 4, 5]
    assert all("val_loss" in r for r in sparse.history if r["epoch"] in (2, 4, 5))
    np.testing.assert_array_equal(every.step_losses, sparse.step_losses)  # validation leaves training alone
    for epoch in (2, 4, 5):
        assert sparse.history[epoch - 1]["val_accuracy"] == every.history[epoch - 1]["val_accuracy"]
    # select='best' chooses among the validated epochs only
    scores = {e: every.history[e - 1]["val_accuracy"] for e in (2, 4, 5)}
    assert sparse.best_epoch == max(scores, key=lambda e: (scores[e], -e))
    chosen = fit(MODEL, TASK, TRAIN, _cfg(epochs=sparse.best_epoch), VAL)
    for a, b in zip(jax.tree.leaves(sparse.state.params), jax.tree.leaves(chosen.state.params), strict=True):
        np.testing.assert_array_equal(a, b)  # the state kept is the chosen epoch's


def test_trials_trained_together_validate_the_same_epochs():
    results = fit_trials(MODEL, TASK, TRAIN, _cfg(epochs=3, val_every=2), VAL, seeds=(0, 1))
    assert [_validated(r.history) for r in results] == [[2, 3], [2, 3]]


def test_val_every_below_one_is_refused():
    with pytest.raises(ValueError, match="val_every must be >= 1, got 0"):
        TrainConfig(val_every=0)


@pytest.mark.parametrize("main", [cnn.main, unet.main], ids=["cnn", "unet"])
def test_the_flag_is_checked_and_reaches_the_training_config(main, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--dataset=synthetic", "--val-every=0"])
    assert info.value.code == 2
    assert "--val-every must be >= 1, got 0" in capsys.readouterr().err


def test_the_cnn_flag_reaches_the_training_config():
    cfg = cnn.CNNConfig(dataset="synthetic", synthetic_train=430, optimizer="rprop", val_every=10)
    (variant,) = cnn.build_variants(cfg, cnn.load_data(cfg))
    assert variant.train.val_every == 10 and variant.train.full_batch


def test_a_cli_run_validates_the_epochs_it_says(tmp_path, capsys):
    argv = ["--dataset=synthetic", "--synthetic-train=430", "--recipe=report", "--epochs=3", "--val-every=2"]
    assert cnn.main([*argv, f"--out={tmp_path}/r"]) == 0
    assert (
        "keeps the last epoch, evaluated on test; validates every 2 epochs and the last"
        in capsys.readouterr().out
    )
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val_accuracy" in r] == [2, 3]


def test_the_plan_says_when_there_is_nothing_to_validate():
    data = Dataset("squares", colour_squares(8), colour_squares(4, seed=1), None, num_classes=10)
    variant = Variant("a", MODEL, TASK, _cfg(epochs=4, batch_size=4, val_every=2))
    assert "validates every 2 epochs and the last" in plan([variant], data, "test", Path("r"), 1)
    no_val = dataclasses.replace(data, val=None)
    assert "val_every=2 does nothing: there is no validation data" in plan(
        [variant], no_val, "test", Path("r"), 1
    )


def test_the_unet_flag_reaches_the_training_config():
    cfg = unet.UNetConfig(dataset="synthetic", val_every=4)
    assert cfg.train_config(cfg.resolved(), has_val=True).val_every == 4


def _sparse_history(variant: str = "a") -> list[dict]:
    """12 epochs validated on 5, 10 and 12 (--val-every=5)."""
    out = []
    for e in range(1, 13):
        r = {"variant": variant, "trial": 1, "epoch": e, "train_loss": 1.0 / e}
        if e in (5, 10, 12):
            r.update(val_loss=0.1, val_accuracy={5: 0.6, 10: 0.9, 12: 0.8}[e])
        out.append(r)
    return out


def test_the_sweep_table_reads_a_history_validated_every_few_epochs(tmp_path):
    history = _sparse_history()
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (tmp_path / "config.json").write_text(json.dumps({"tasks": {"a": TASK.to_record()}}))
    (row,) = sweep.summarize_run(tmp_path)
    assert row["metric"] == "val_accuracy" and row["epochs"] == 12
    assert (row["best"], row["best_epoch"], row["last"], row["at_10"]) == (0.9, 10, 0.8, 0.9)
    assert "at_20" not in row
    assert row["history"][4] == 0.6 and row["history"][0] is None
    cut = history[
        :11
    ]  # a run stopped after epoch 11, which did not validate: its last validation is epoch 10's
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cut))
    (row,) = sweep.summarize_run(tmp_path)
    assert (row["epochs"], row["last"]) == (11, 0.9)


def test_the_figures_place_sparse_validation_at_its_epochs(tmp_path, monkeypatch):
    drawn, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig) or save(fig, path))
    history = [{k: v for k, v in r.items() if k not in ("variant", "trial")} for r in _sparse_history()]
    trials = [{"variant": "a", "history": history}, {"variant": "a", "history": history}]
    panels = variant_panels([TASK], trials)
    val = panels["val accuracy"]["a"][0]
    assert val.shape == (12,)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(val)), [4, 9, 11])
    assert plots.overlay(panels, "variants", tmp_path / "v.png").exists()
    assert plots.history(history, "accuracy", "trial 1", tmp_path / "h.png").exists()
    overlay, single = drawn
    (line,) = overlay.axes[1].lines
    np.testing.assert_array_equal(line.get_xdata(), [5, 10, 12])
    np.testing.assert_allclose(line.get_ydata(), [0.6, 0.9, 0.8])
    val_lines = [ln for ln in single.axes[1].lines if ln.get_label() == "val"]
    np.testing.assert_array_equal(val_lines[0].get_xdata(), [5, 10, 12])


def test_the_time_left_averages_a_whole_cycle_of_validated_and_skipped_epochs():
    from jaxadl.train import RunSoFar

    run = RunSoFar(epochs=20, best_epoch=20, val_every=5)
    for epoch, seconds in enumerate([10.0, 10.0, 10.0, 10.0, 30.0], start=1):
        run.note({"epoch": epoch}, np.zeros(1), seconds)
    assert run.history[-1]["eta_seconds"] == pytest.approx(14.0 * 15)  # not the last 3 epochs' 16.7 s
    run = RunSoFar(epochs=20, best_epoch=20, val_every=2)
    for epoch, seconds in enumerate([10.0, 20.0, 10.0, 20.0, 10.0], start=1):
        run.note({"epoch": epoch}, np.zeros(1), seconds)
    assert [r["eta_seconds"] / (20 - r["epoch"]) for r in run.history[3:]] == [15.0, 15.0]  # 2 whole cycles


def test_cv_summary_by_epoch_keeps_the_epochs_every_fold_validated():
    from tools.cv_summary import epoch_rules, validation_curves

    sparse = [{k: v for k, v in r.items() if k not in ("variant", "trial")} for r in _sparse_history()]
    dense = [{"epoch": e, "val_accuracy": 0.5 + e / 100} for e in range(1, 13)]
    epochs, curves = validation_curves({"histories": {0: [sparse], 1: [dense]}})
    assert epochs == [5, 10, 12]
    np.testing.assert_allclose(curves, [[0.6, 0.9, 0.8], [0.55, 0.6, 0.62]])
    rules = epoch_rules(epochs, curves)
    assert rules["last epoch"] == (pytest.approx(0.71), "epoch 12")
    assert rules["epoch chosen on the other folds"][1] == "epochs 12,10"  # fold 1's best, then fold 0's
    assert rules["best fixed epoch (optimistic)"][1] == "epoch 10"
    odd = [{"epoch": e, "val_accuracy": 0.7 if e % 2 else None} for e in range(1, 5)]
    even = [{"epoch": e, "val_accuracy": None if e % 2 else 0.7} for e in range(1, 5)]
    with pytest.raises(ValueError, match=r"no epoch was validated on every fold and trial \(--val-every\)"):
        validation_curves({"histories": {0: [odd], 1: [even]}})

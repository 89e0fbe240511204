"""Trials trained together (one program, a stacked state) give each trial's separate run within float tolerance."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxadl import AugmentConfig, Classification, OptimConfig, SignCNN, TrainConfig, fit
from jaxadl.checkpoint import Checkpointer
from jaxadl.together import TrialsTrainer, fit_trials, over_trials, stack, unstack
from jaxadl.train import DivergenceError
from tests.helpers import colour_squares

TRAIN = colour_squares(192, seed=0)
VAL = colour_squares(64, seed=1)
TASK = Classification(num_classes=10)
CFG = TrainConfig(
    epochs=2,
    batch_size=32,
    eval_batch_size=64,
    optim=OptimConfig("adam", 2e-3),
    augment=AugmentConfig(),
    select="best",
    ema=0.5,
)


def _close(a, b, rtol=2e-4, atol=2e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _same_as_separate(results, seeds, cfg, model, train=TRAIN):
    for result, seed in zip(results, seeds, strict=True):
        alone = fit(model, TASK, train, dataclasses.replace(cfg, seed=seed), VAL)
        _close(result.step_losses, alone.step_losses)
        assert result.best_epoch == alone.best_epoch
        for mine, theirs in zip(result.history, alone.history, strict=True):
            _close(mine["val_loss"], theirs["val_loss"])
            assert abs(mine["val_accuracy"] - theirs["val_accuracy"]) <= 1.0 / len(VAL) + 1e-9
        jax.tree.map(lambda a, b: _close(a, b, rtol=1e-3, atol=1e-4), result.state.params, alone.state.params)


@pytest.mark.parametrize(
    "vectorize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["unrolled", "vmap"]
)
def test_each_trial_equals_its_separate_run(vectorize):
    seeds = [3, 7]
    results = fit_trials(SignCNN(num_classes=10), TASK, TRAIN, CFG, VAL, seeds=seeds, vectorize=vectorize)
    assert len(results) == 2 and not np.allclose(results[0].step_losses, results[1].step_losses)
    _same_as_separate(results, seeds, CFG, SignCNN(num_classes=10))


@pytest.mark.slow
def test_full_batch_with_batch_norm_equals_separate_runs():
    cfg = TrainConfig(
        epochs=3, full_batch=True, chunk_size=64, optim=OptimConfig("rprop", 1e-3), eval_batch_size=64
    )
    model, train = SignCNN(num_classes=10, batch_norm=True), colour_squares(128, seed=0)
    results = fit_trials(model, TASK, train, cfg, VAL, seeds=[0, 1])
    _same_as_separate(results, [0, 1], cfg, model, train)


def test_over_trials_maps_stacked_arguments_and_shares_the_rest():
    fn = lambda a, b, c: {"sum": a + b * c}
    stacked, shared = np.arange(6.0).reshape(3, 2), np.float32(10.0)
    for vectorize in (False, True):
        out = over_trials(fn, (0, None, 0), 3, vectorize)(stacked, shared, stacked)
        _close(out["sum"], stacked + 10.0 * stacked)
    tree = stack([{"w": np.ones(2)}, {"w": np.zeros(2)}])
    assert tree["w"].shape == (2, 2) and float(unstack(tree, 1)["w"].sum()) == 0.0


def test_the_epoch_returns_metrics_per_step_and_trial():
    cfg = dataclasses.replace(CFG, epochs=1, augment=None, ema=0.0, select="last")
    trainer = TrialsTrainer(SignCNN(num_classes=10), TASK, cfg, len(TRAIN), seeds=[0, 1, 2])
    state = trainer.init(TRAIN.images.shape[1:])
    assert state.step.shape == (3,)
    images, labels, _ = trainer.put_train(TRAIN)
    state, metrics = trainer.train_epoch(state, images, labels)
    assert metrics["loss"].shape == (len(TRAIN) // 32, 3)
    np.testing.assert_array_equal(np.asarray(state.step), [6, 6, 6])


@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_uninterrupted_numbers(tmp_path):
    """Stopped after epoch 1 with one trial a save ahead (killed between two trials' saves): resumed, the
    trials repeat from the epoch both saved and end where an uninterrupted run does."""
    constant = OptimConfig("adam", 2e-3, schedule="constant")  # the same schedule whatever the epochs
    model, seeds, cfg = SignCNN(num_classes=10), [0, 1], dataclasses.replace(CFG, epochs=3, optim=constant)
    dirs = [tmp_path / "a", tmp_path / "b"]
    whole = fit_trials(model, TASK, TRAIN, cfg, VAL, seeds=seeds)
    fit_trials(model, TASK, TRAIN, dataclasses.replace(cfg, epochs=1), VAL, seeds=seeds, checkpoint_dirs=dirs)
    ahead = fit(
        model,
        TASK,
        TRAIN,
        dataclasses.replace(cfg, epochs=2, seed=0),
        VAL,
        checkpoint_dir=dirs[0],
        resume=True,
    )
    assert Checkpointer(dirs[0]).last_epoch() == 2 and Checkpointer(dirs[1]).last_epoch() == 1
    assert len(ahead.history) == 2
    noted = []
    resumed = fit_trials(
        model, TASK, TRAIN, cfg, VAL, seeds=seeds, checkpoint_dirs=dirs, resume=True,
        on_epoch=lambda k, rec: noted.append((k, rec["epoch"])),
    )  # fmt: skip
    assert noted == [(1, 2), (0, 3), (1, 3)]  # trial 0 repeats epoch 2 but notes it once
    for r, w in zip(resumed, whole, strict=True):
        assert [h["epoch"] for h in r.history] == [1, 2, 3]
        _close(r.step_losses, w.step_losses)
        assert r.best_epoch == w.best_epoch


@pytest.mark.slow
def test_a_diverging_trial_stops_alone(monkeypatch):
    """Trial 0's output bias poisoned with a NaN: it fails at step 1 and the other trial trains as if alone."""
    cfg = dataclasses.replace(CFG, augment=None, ema=0.0, select="last")
    fresh = TrialsTrainer.init

    def poisoned(self, shape):
        state = fresh(self, shape)
        bias = state.params["fc"]["bias"]  # NaN logits (a NaN conv kernel is cut off by the ReLU)
        return state.replace(
            params={**state.params, "fc": {**state.params["fc"], "bias": bias.at[0].set(np.nan)}}
        )

    monkeypatch.setattr(TrialsTrainer, "init", poisoned)
    bad, good = fit_trials(SignCNN(num_classes=10), TASK, TRAIN, cfg, VAL, seeds=[0, 1])
    assert isinstance(bad, DivergenceError) and bad.step == 1
    assert not isinstance(good, DivergenceError) and len(good.history) == 2
    _close(
        good.step_losses,
        fit(SignCNN(num_classes=10), TASK, TRAIN, dataclasses.replace(cfg, seed=1), VAL).step_losses,
    )


@pytest.mark.slow
def test_a_group_whose_trials_all_diverge_stops():
    cfg = dataclasses.replace(CFG, augment=None, ema=0.0, select="last", epochs=3)
    trainer = TrialsTrainer(SignCNN(num_classes=10), TASK, cfg, len(TRAIN), seeds=[0, 1])
    fresh, epochs = trainer.init, []
    nan_bias = lambda p: {**p, "fc": {**p["fc"], "bias": p["fc"]["bias"].at[:, 0].set(np.nan)}}
    trainer.init = lambda shape: (lambda s: s.replace(params=nan_bias(s.params)))(fresh(shape))
    epoch = trainer.train_epoch
    trainer.train_epoch = lambda *a: epochs.append(1) or epoch(*a)
    results = fit_trials(SignCNN(num_classes=10), TASK, TRAIN, cfg, VAL, seeds=[0, 1], trainer=trainer)
    assert all(isinstance(r, DivergenceError) and r.step == 1 for r in results) and len(epochs) == 1


def test_a_trial_further_ahead_resumes_alone_before_the_group(tmp_path):
    from jaxadl.run_folder import RunFolder
    from jaxadl.trials import RunContext, Variant, _groups

    folder = RunFolder(tmp_path)
    for trial, epochs in {1: [3, 4], 2: [1, 2], 3: [2, 3], 4: []}.items():
        for e in epochs:
            (folder.checkpoints("v", trial) / "last" / str(e)).mkdir(parents=True)
    variant = Variant("v", SignCNN(num_classes=10), TASK, CFG, trials=4)
    ctx = RunContext(None, "val", VAL, folder, None, resume=True, together=True)
    # trial 4 has nothing saved: only trials at epoch 0 can join it; the others resume alone first
    assert _groups(ctx, variant, [1, 2, 3, 4]) == [[1], [2], [3], [4]]
    ctx = dataclasses.replace(ctx, together=True)
    assert _groups(ctx, variant, [1, 2, 3]) == [[1], [2, 3]]  # 3 is one save ahead of 2 and holds 2's epoch
    assert _groups(dataclasses.replace(ctx, together=False), variant, [2, 3]) == [[2], [3]]


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="validation"):
        fit_trials(SignCNN(num_classes=10), TASK, TRAIN, CFG, None, seeds=[0, 1])
    with pytest.raises(ValueError, match="2 seeds"):
        fit_trials(SignCNN(num_classes=10), TASK, TRAIN, CFG, VAL, seeds=[0, 1], checkpoint_dirs=["a"])


def test_a_run_with_trials_together_writes_what_separate_trials_write(tmp_path):
    """run_experiment(together=True): every trial's record, metrics lines and checkpoints, as separate trials
    give them (within float tolerance); resuming such a run trains nothing again."""
    from jaxadl.data.base import Dataset
    from jaxadl.experiment import Variant, run_experiment
    from jaxadl.run_folder import RunFolder

    data = Dataset("squares", TRAIN, VAL, colour_squares(64, seed=2), 10)
    cfg = dataclasses.replace(CFG, augment=None)
    variant = Variant("v", SignCNN(num_classes=10), TASK, cfg, trials=2)
    quiet = lambda _: None
    apart = run_experiment("test", data, [variant], tmp_path / "apart", {}, log=quiet, keep=1)
    lines = []
    both = run_experiment(
        "test", data, [variant], tmp_path / "both", {}, log=lines.append, keep=1, together=True
    )
    assert any("trials 1, 2 together" in line for line in lines)
    for mine, theirs in zip(both["trials"], apart["trials"], strict=True):
        assert mine["trial"] == theirs["trial"] and mine["seed"] == theirs["seed"]
        assert mine["trained_together"] == [1, 2] and "trained_together" not in theirs
        assert mine["best_epoch"] == theirs["best_epoch"]
        assert abs(mine["eval"]["accuracy"]["mean"] - theirs["eval"]["accuracy"]["mean"]) <= 1.0 / 64 + 1e-9
        for a, b in zip(mine["history"], theirs["history"], strict=True):
            _close(a["train_loss"], b["train_loss"])
    folder = RunFolder(tmp_path / "both")
    metrics = [json.loads(line) for line in folder.metrics.read_text().splitlines()]
    assert sorted((m["trial"], m["epoch"]) for m in metrics) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all((folder.checkpoints("v", t) / "last" / "2").is_dir() for t in (1, 2))
    lines.clear()
    again = run_experiment(
        "test", data, [variant], tmp_path / "both", {}, log=lines.append, keep=1, resume=True, together=True
    )
    assert sum("finished before" in line for line in lines) == 2 and not any(
        "together" in line for line in lines
    )
    assert [t["eval"] for t in again["trials"]] == [t["eval"] for t in both["trials"]]

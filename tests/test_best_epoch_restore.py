"""A run folder whose selected (best-on-validation) epoch is not its last: loading the trial, ensembling
it or re-evaluating it must use the best epoch's weights, as the run itself evaluated them."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxadl import Classification, OptimConfig, SignCNN, TrainConfig, Trainer
from jaxadl.checkpoint import Checkpointer
from jaxadl.predict import load, restore_trial
from jaxadl.run_folder import RunFolder
from jaxadl.trials import model_spec

TASK = Classification(num_classes=10)
MODEL = SignCNN(num_classes=10)
SHAPE = (28, 28, 3)
BEST, EPOCHS = 2, 3


def _write_run(root, select: str, ema: float = 0.0) -> dict[int, dict]:
    """A one-trial run folder as a run writes it: every epoch's checkpoint (the newest two kept, and the best
    one, epoch 2 of 3) and the trial's record. Epoch e's weights are the initial ones plus e. Returns the
    evaluated weights (the average when `ema`) by epoch."""
    cfg = TrainConfig(epochs=EPOCHS, batch_size=32, optim=OptimConfig("adam", 1e-3), select=select, ema=ema)
    state = Trainer(MODEL, TASK, cfg, 64).init(SHAPE)
    folder = RunFolder(root)
    ckpt = Checkpointer(folder.checkpoints("baseline", 1), keep=2)
    weights = {}
    for epoch in range(1, EPOCHS + 1):
        params = jax.tree.map(lambda p, e=epoch: p + e, state.params)
        saved = state.replace(step=state.step + 2 * epoch, params=params)
        if ema:  # the average differs from the raw weights: it is what the run evaluated
            avg = jax.tree.map(lambda p, e=epoch: p - 10 * e, state.params)
            saved = saved.replace(ema={"params": avg, "batch_stats": {}})
        weights[epoch] = jax.tree.map(np.asarray, saved.ema["params"] if ema else saved.params)
        meta = {"history": [], "step_losses": [], "best_metric": 0.5, "best_epoch": BEST}
        ckpt.save(epoch, saved, meta, is_best=epoch == BEST)
    ckpt.close()
    record = {
        "variant": "baseline",
        "trial": 1,
        "seed": 0,
        "train_config": dataclasses.asdict(cfg),
        "model_spec": model_spec(MODEL),
        "task": TASK.to_record(),
        "checkpoints": folder.checkpoints("baseline", 1).relative_to(folder.root).as_posix(),
        "input_shape": list(SHAPE),
        "best_epoch": BEST if select == "best" else EPOCHS,
    }
    folder.trials_dir.mkdir(parents=True, exist_ok=True)
    folder.trial_record("baseline", 1).write_text(json.dumps(record))
    return weights


def _assert_same(tree, expected):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, tree), expected)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_best_epoch_run_loads_its_best_epoch_not_its_last(tmp_path, ema):
    weights = _write_run(tmp_path, "best", ema)
    last = RunFolder(tmp_path).checkpoints("baseline", 1) / "last"
    assert sorted(p.name for p in last.iterdir()) == ["2", "3"]  # the best epoch is also among the last here
    predictor = load(tmp_path)
    _assert_same(predictor.variables["params"], weights[BEST])
    assert not np.array_equal(predictor.variables["params"]["fc"]["bias"], weights[EPOCHS]["fc"]["bias"])
    assert "epoch=2" in repr(predictor)
    # the ensemble of all trials and --eval-only rebuild the trial the same way
    _assert_same(load(tmp_path, trial="all").variables["params"], weights[BEST])
    (record,) = RunFolder(tmp_path).trial_records()
    _assert_same(restore_trial(tmp_path, record)[2]["params"], weights[BEST])


def test_a_last_epoch_run_loads_its_last_epoch(tmp_path):
    weights = _write_run(tmp_path, "last")
    _assert_same(load(tmp_path).variables["params"], weights[EPOCHS])

"""The recipes as the CLIs build them: the values reach the model, task, optimizer and trainer.

Expected values are written out here (as README's recipe tables give them), not read from the recipe
tables, so a recipe that stops reaching the objects it configures fails here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cnn, unet
from experiments.cli import parse
from jaxadl import AugmentConfig, Trainer
from jaxadl.data.lungs import synthetic_lungs
from jaxadl.data.synthetic import synthetic_signs

SIGNS = synthetic_signs(430, 43, 43, seed=0)
SIGNS_NO_VAL = synthetic_signs(430, 0, 43, seed=0)
LUNGS = synthetic_lungs(8, 2, 2, image_size=32, seed=0)


def cnn_variants(*argv, data=SIGNS):
    return {v.name: v for v in cnn.build_variants(parse(cnn.CNNConfig, list(argv), ""), data)}


def unet_variants(*argv, data=LUNGS):
    return {
        v.name: v for v in unet.build_variants(parse(unet.UNetConfig, ["--image-size=32", *argv], ""), data)
    }


def decayed(variant, n_train):
    """Which parameters the built optimizer decays: its update for zero gradients is non-zero there."""
    trainer = Trainer(variant.model, variant.task, variant.train, n_train)
    state = trainer.init(
        SIGNS.train.images.shape[1:] if variant.task.kind == "classification" else (32, 32, 1)
    )
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    updates, _ = trainer.tx.update(zeros, state.opt_state, state.params)
    return {"/".join(str(k.key) for k in path): bool(jnp.any(u != 0))
            for path, u in jax.tree_util.tree_leaves_with_path(updates)}  # fmt: skip


def test_cnn_strong_recipe_reaches_the_objects():
    v = cnn_variants()["baseline"]
    o, t, k = v.train.optim, v.task, v.train
    assert (o.name, o.lr, o.schedule, o.weight_decay) == ("adam", 2e-3, "onecycle", 5e-4)
    assert t.label_smoothing == 0.1 and t.image_norm is False
    mean = SIGNS.train.images.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(t.mean, mean, rtol=1e-6)  # per-channel normalisation from the training set
    assert (k.epochs, k.batch_size, k.select, k.tta, k.ema, k.full_batch) == (
        30,
        128,
        "last",
        True,
        0.0,
        False,
    )
    assert k.augment is not None and v.trials == 1 and v.model.batch_norm is False
    mask = decayed(v, len(SIGNS.train))
    assert mask["conv1/kernel"] and mask["fc/kernel"] and not mask["conv1/bias"] and not mask["fc/bias"]


def test_cnn_augmentation_ranges_from_the_flags():
    assert cnn_variants()["baseline"].train.augment == AugmentConfig(
        rotate_deg=12.0, translate_px=2.5, scale=0.1
    )
    k = cnn_variants("--rotate-deg=20", "--translate-px=4", "--scale=0.2")["baseline"].train
    assert (k.augment.rotate_deg, k.augment.translate_px, k.augment.scale) == (20.0, 4.0, 0.2)
    k = cnn_variants("--recipe=report", "--augment", "--rotate-deg=5")["baseline"].train
    assert (k.augment.rotate_deg, k.augment.translate_px, k.augment.scale) == (5.0, 2.5, 0.1)


def test_cnn_strong_sgd_and_rprop():
    sgd = cnn_variants("--optimizer=sgd")["SGD"].train.optim
    assert (sgd.name, sgd.lr, sgd.momentum, sgd.nesterov) == ("sgd", 0.05, 0.9, True)
    rp = cnn_variants("--optimizer=rprop")["Rprop"]
    o = rp.train.optim
    assert (o.name, o.lr, o.eta_plus, o.eta_minus, o.weight_decay, o.schedule) == (
        "rprop", 3e-3, 1.5, 0.5, 0.0, "constant")  # fmt: skip
    assert rp.train.full_batch and rp.train.epochs == 150 and rp.task.image_norm is True
    assert rp.task.label_smoothing == 0.2


def test_cnn_report_recipe_and_grid_trials():
    grid = cnn_variants("--recipe=report", "--grid")
    assert {n: v.trials for n, v in grid.items()} == {"baseline": 3, "batch norm": 3, "SGD": 1, "Rprop": 1}
    assert grid["batch norm"].model.batch_norm and not grid["baseline"].model.batch_norm
    for v in grid.values():
        o, t, k = v.train.optim, v.task, v.train
        assert (o.lr, o.schedule, o.weight_decay, o.momentum) == (1e-3, "constant", 0.0, 0.0)
        assert t.label_smoothing == 0.0 and t.mean == (0.0,) and t.std == (1.0,)  # inputs / 255
        assert (k.epochs, k.batch_size, k.select, k.augment, k.tta, k.full_batch) == (
            10, 128, "last", None, False, False)  # fmt: skip
    assert grid["Rprop"].train.optim.eta_plus == 1.2
    assert not any(decayed(grid["baseline"], len(SIGNS.train)).values())


def test_cnn_flags_override_and_best_needs_validation():
    v = cnn_variants("--lr=0.01", "--label-smoothing=0", "--no-tta", "--epochs=3")["baseline"]
    assert (v.train.optim.lr, v.task.label_smoothing, v.train.tta, v.train.epochs) == (0.01, 0.0, False, 3)
    assert cnn_variants("--select=best")["baseline"].train.select == "best"
    assert cnn_variants("--select=best", data=SIGNS_NO_VAL)["baseline"].train.select == "last"  # no val split


def test_unet_strong_recipe_reaches_the_objects():
    v = unet_variants()["baseline"]
    o, t, k, m = v.train.optim, v.task, v.train, v.model
    assert (o.name, o.lr, o.schedule, o.weight_decay) == ("adam", 1e-3, "onecycle", 1e-4)
    assert (t.kind, t.dice_weight, t.image_norm) == ("segmentation", 1.0, True)
    assert (k.epochs, k.batch_size, k.select, k.tta) == (25, 4, "best", False)
    assert k.augment is not None and k.augment.translate_px == pytest.approx(0.03 * 32)
    assert (m.batch_norm, m.upsample, m.activation, m.depth, m.base_features) == (
        True,
        "bilinear",
        "relu",
        5,
        16,
    )
    small = unet_variants("--width=4", "--depth=2")[
        "baseline"
    ]  # the same recipe; a smaller net compiles fast
    mask = decayed(small, len(LUNGS.train))
    assert any(mask.values()) and not any(val for name, val in mask.items() if name.endswith("bias"))


def test_unet_report_recipe_and_grid_trials():
    grid = unet_variants("--recipe=report", "--grid")
    assert {n: v.trials for n, v in grid.items()} == {"baseline": 2, "nearest": 2, "ELU": 2}
    assert (grid["nearest"].model.upsample, grid["ELU"].model.activation) == ("nearest", "elu")
    for v in grid.values():
        o, t, k = v.train.optim, v.task, v.train
        assert (o.lr, o.schedule, o.weight_decay) == (1e-3, "constant", 0.0)
        assert (t.dice_weight, t.image_norm, t.mean, t.std) == (0.0, False, (0.0,), (1.0,))
        assert (k.epochs, k.batch_size, k.select, k.augment) == (25, 4, "last", None)
        assert v.model.batch_norm is False and v.model.depth == 4  # the report's U-Net

"""Weight averaging (EMA), test-time augmentation (TTA) and per-image normalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadl import Classification, OptimConfig, SignCNN, TrainConfig, Trainer, fit
from jaxadl.tta import SHIFTS, shift, tta_logits
from tests.helpers import colour_squares

TRAIN = colour_squares(320, seed=0)
VAL = colour_squares(100, seed=1)
TASK = Classification(num_classes=10)


def test_shift_moves_content_and_repeats_edges():
    x = jnp.arange(2 * 4 * 5 * 1, dtype=jnp.float32).reshape(2, 4, 5, 1)
    down = shift(x, 1, 0)  # out[i] = x[i + 1]
    np.testing.assert_array_equal(down[:, :3], x[:, 1:])
    np.testing.assert_array_equal(down[:, 3], x[:, 3])
    left = shift(x, 0, -1)  # out[:, j] = x[:, j - 1]
    np.testing.assert_array_equal(left[:, :, 1:], x[:, :, :4])
    np.testing.assert_array_equal(left[:, :, 0], x[:, :, 0])
    np.testing.assert_array_equal(shift(x, 0, 0), x)


def test_tta_classification_is_the_mean_over_the_shifted_views():
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 6, 6, 2))
    w = jax.random.normal(jax.random.PRNGKey(1), (6 * 6 * 2, 4))
    apply = lambda v: v.reshape(v.shape[0], -1) @ w
    expected = np.mean([np.asarray(apply(shift(x, dy, dx))) for dy, dx in SHIFTS], axis=0)
    out = tta_logits(apply, x)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, apply(x), atol=1e-3)  # the views do differ


def test_tta_segmentation_shifts_the_logits_back_over_their_pixels():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1))
    out = tta_logits(lambda v: 2.0 * v - 1.0, x)  # a per-pixel model: TTA must not move anything
    assert out.shape == x.shape
    np.testing.assert_allclose(out[:, 1:-1, 1:-1], 2.0 * x[:, 1:-1, 1:-1] - 1.0, rtol=1e-6)


def test_ema_follows_its_formula_and_is_what_gets_evaluated():
    cfg = TrainConfig(epochs=1, batch_size=32, optim=OptimConfig("adam", 1e-2), ema=0.9, eval_batch_size=100)
    trainer = Trainer(SignCNN(num_classes=10), TASK, cfg, len(TRAIN))
    state = trainer.init(TRAIN.images.shape[1:])
    p0 = jax.tree.map(np.asarray, state.params)
    jax.tree.map(np.testing.assert_array_equal, p0, jax.tree.map(np.asarray, state.ema["params"]))
    state, _ = jax.jit(trainer.train_step)(state, TRAIN.images[:32], TRAIN.labels[:32])
    decay = min(0.9, 1.0 / 10.0)  # the ramp at step 0
    expected = jax.tree.map(lambda a, b: a + (1 - decay) * (np.asarray(b) - a), p0, state.params)
    jax.tree.map(
        lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7), expected, state.ema["params"]
    )
    raw = trainer.evaluator.evaluate_padded(state.params, state.batch_stats, *trainer.put_eval(VAL)[:2])
    averaged = trainer.evaluator.evaluate_padded(
        state.ema["params"], state.ema["batch_stats"], *trainer.put_eval(VAL)[:2]
    )
    got = trainer.evaluate(state, VAL)
    np.testing.assert_allclose(got["loss"], np.asarray(averaged["loss"])[: len(VAL)], rtol=1e-6)
    assert not np.allclose(got["loss"], np.asarray(raw["loss"])[: len(VAL)])


@pytest.mark.slow
@pytest.mark.parametrize("bn", [False, True])
def test_training_with_ema_and_tta_learns(bn):
    cfg = TrainConfig(
        epochs=4, batch_size=32, optim=OptimConfig("adam", 2e-3), ema=0.95, tta=True, eval_batch_size=100
    )
    result = fit(SignCNN(num_classes=10, batch_norm=bn), TASK, TRAIN, cfg, VAL)
    assert result.history[-1]["val_accuracy"] > 0.5, result.history  # chance is 0.1
    if bn:  # batch-norm statistics are averaged too
        assert set(result.state.ema) == {"params", "batch_stats"} and result.state.ema["batch_stats"]


def test_ema_decay_must_be_below_one():
    with pytest.raises(ValueError, match=r"ema must be in \[0, 1\), got 1.0"):
        TrainConfig(ema=1.0)


def test_image_norm_standardises_each_image():
    x = (
        jax.random.uniform(jax.random.PRNGKey(0), (4, 5, 5, 3))
        * jnp.array([0.6, 0.8, 1.0, 0.3])[:, None, None, None]
    )
    x = x.at[3].set(0.25)  # a flat image stays finite
    out = Classification(image_norm=True).normalize(x)
    np.testing.assert_allclose(out[:3].mean((1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:3].std((1, 2, 3)), 1.0, rtol=1e-2)
    np.testing.assert_array_equal(out[3], 0.0)
    # brightness and contrast changes of an image give (almost) the same input
    np.testing.assert_allclose(
        Classification(image_norm=True).normalize(0.5 * x[:3] + 0.1), out[:3], atol=1e-2
    )


def test_full_batch_ignores_the_mini_batch_size():
    cfg = TrainConfig(batch_size=4096, full_batch=True, optim=OptimConfig("rprop", 1e-3))
    assert Trainer(SignCNN(num_classes=10), TASK, cfg, 320).steps_per_epoch == 1

"""The levers for the lungs' worst cases (#33): a width-only stretch, an elastic warp, a loss that weighs
the worst images; each off by default, each doing what its flag says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import unet
from jaxadl import AugmentConfig, OptimConfig, Segmentation, TrainConfig, UNet
from jaxadl.augment import _pose, augment
from jaxadl.optim import make_optimizer
from jaxadl.step import StepSpec, create_state, loss_and_grads

OFF = dict(rotate_deg=0.0, translate_px=0.0, scale=0.0, brightness=0.0, contrast=0.0)
KEYS = jax.random.split(jax.random.key(0), 256)


def _bar(n: int = 16) -> np.ndarray:
    """n copies of a 9-px-wide, 9-px-tall square at the centre of a 33x33 image (image and mask alike)."""
    x = np.zeros((n, 33, 33, 1), np.float32)
    x[:, 12:21, 12:21] = 1.0
    return x


def _extent(masks: np.ndarray, axis: int) -> np.ndarray:
    """Width (axis=2) or height (axis=1) of each mask's foreground, in pixels."""
    return (masks[..., 0] > 0.5).any(axis=3 - axis).sum(-1)


def test_aspect_stretches_the_width_alone_within_its_range():
    m = np.asarray(jax.vmap(lambda k: _pose(k, AugmentConfig(**OFF, aspect=0.2), 33, 33)[0])(KEYS))
    np.testing.assert_allclose(m[:, 0], [[1.0, 0.0]] * 256, atol=1e-6)  # rows untouched
    stretch = 1.0 / m[:, 1, 1]  # output x = centre + stretch * (input x - centre)
    assert stretch.min() >= 0.8 - 1e-5 and stretch.max() <= 1.2 + 1e-5
    assert stretch.min() < 0.83 and stretch.max() > 1.17
    x = jnp.asarray(_bar())
    images, masks = augment(jax.random.key(3), x, x, AugmentConfig(**OFF, aspect=0.3))
    widths, heights = _extent(np.asarray(masks), 2), _extent(np.asarray(masks), 1)
    assert (heights == 9).all() and widths.min() <= 7 and widths.max() >= 11
    np.testing.assert_array_equal(np.asarray(images) > 0.5, np.asarray(masks) > 0.5)  # they move together


def test_elastic_moves_image_and_mask_together_and_no_further_than_asked():
    x = jnp.asarray(_bar(32))
    images, masks = augment(jax.random.key(4), x, x, AugmentConfig(**OFF, elastic=2.0))
    images, masks = np.asarray(images), np.asarray(masks)
    assert not np.array_equal(masks, np.asarray(x))  # the square's edges moved
    np.testing.assert_array_equal(images > 0.5, masks > 0.5)
    # no pixel moves more than 2 px (cubic overshoot aside: 3 px): the square's area stays near 81
    area = (masks[..., 0] > 0.5).sum((1, 2))
    assert area.min() >= 5 * 5 and area.max() <= 13 * 13 and np.ptp(area) > 0
    far = np.zeros((33, 33), bool)
    far[9:24, 9:24] = True  # the square grown by 3 px each way
    assert not (masks[..., 0] > 0.5)[:, ~far].any()


def test_the_levers_are_off_by_default_and_leave_the_draws_alone():
    cfg = unet.UNetConfig(dataset="synthetic")
    aug = cfg.train_config(cfg.resolved(), has_val=True).augment
    assert aug.aspect == 0.0 and aug.elastic == 0.0 and cfg.focus == 0.0
    x = jnp.asarray(_bar(8))
    plain = augment(jax.random.key(5), x, x, AugmentConfig(rotate_deg=5.0, scale=0.08))[0]
    np.testing.assert_array_equal(
        plain, augment(jax.random.key(5), x, x, AugmentConfig(rotate_deg=5.0, scale=0.08, aspect=0.0))[0]
    )
    on = augment(jax.random.key(5), x, x, AugmentConfig(rotate_deg=5.0, scale=0.08, aspect=0.2))[0]
    assert not np.array_equal(plain, on)
    flags = unet.UNetConfig(dataset="synthetic", aspect=0.1, elastic=0.02, image_size=64)
    aug = flags.train_config(flags.resolved(), has_val=True).augment
    assert aug.aspect == 0.1 and aug.elastic == pytest.approx(0.02 * 64)  # a fraction of the side


def test_bad_lever_values_are_errors():
    with pytest.raises(ValueError, match="aspect"):
        AugmentConfig(aspect=1.0)
    with pytest.raises(ValueError, match="elastic"):
        AugmentConfig(elastic=-1.0)
    with pytest.raises(ValueError, match="focus"):
        TrainConfig(focus=-0.5)
    with pytest.raises(ValueError, match="full-batch"):
        TrainConfig(focus=1.0, full_batch=True)


def test_focus_weighs_each_image_by_its_loss_to_the_power():
    model, task = UNet(depth=1, base_features=2), Segmentation()
    state = create_state(model, make_optimizer(OptimConfig("adam", 1e-3), 10), (16, 16, 1), seed=0)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 16, 16, 1)), jnp.float32)
    y = jnp.asarray(rng.random((4, 16, 16, 1)) > 0.5, jnp.float32)
    uniform = jnp.full((4,), 0.25)
    plain = loss_and_grads(StepSpec(model, task), state, x, y, uniform)
    focused = loss_and_grads(StepSpec(model, task, focus=2.0), state, x, y, uniform)
    logits = model.apply({"params": state.params}, x, train=True)
    per_image = np.asarray(task.loss(logits, y))
    assert np.ptp(per_image) > 0
    np.testing.assert_allclose(plain[0], per_image.mean(), rtol=1e-5)
    share = per_image**2 / (per_image**2).sum()
    np.testing.assert_allclose(focused[0], (per_image * share).sum(), rtol=1e-5)
    # the weights are constants: the gradient is that of the fixed-weight sum, not of the ratio
    fixed = loss_and_grads(StepSpec(model, task), state, x, y, jnp.asarray(share))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), focused[1], fixed[1])

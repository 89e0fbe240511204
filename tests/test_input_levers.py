"""Gamma and shading augmentation, histogram equalisation: the exposure levers of the U-Net recipe."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxadl import AugmentConfig, Segmentation
from jaxadl.augment import augment
from jaxadl.tasks import equalize

PHOTO_OFF = dict(rotate_deg=0.0, translate_px=0.0, scale=0.0, brightness=0.0, contrast=0.0)


def test_gamma_bends_each_image_by_one_exponent_in_range():
    x = jnp.asarray(np.random.default_rng(0).uniform(0.05, 0.7, (8, 6, 6, 1)), jnp.float32)
    y, _ = augment(
        jax.random.key(1), x, jnp.zeros((8, 6, 6, 1), jnp.int32), AugmentConfig(**PHOTO_OFF, gamma=0.4)
    )
    exponent = np.log(np.asarray(y)) / np.log(np.asarray(x))  # x ** e = y
    per_image = exponent.reshape(8, -1)
    np.testing.assert_allclose(
        per_image, np.broadcast_to(per_image[:, :1], per_image.shape), rtol=1e-2
    )  # one exponent per image
    assert np.all(np.abs(np.log(per_image[:, 0])) <= 0.4 + 1e-4)
    assert np.ptp(per_image[:, 0]) > 0.1  # and they differ between images


def test_gamma_and_shading_leave_the_pose_and_the_masks_alone():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 1, (4, 16, 16, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 2, (4, 16, 16, 1)), jnp.int32)
    a, la = augment(jax.random.key(2), x, labels, AugmentConfig())
    for lever in (dict(gamma=0.3), dict(shading=0.1)):
        b, lb = augment(jax.random.key(2), x, labels, AugmentConfig(**lever))
        np.testing.assert_array_equal(la, lb)  # the same pose drawn, the masks not shaded
        assert not np.allclose(a, b, atol=1e-3)  # while the images change


def test_shading_adds_a_smooth_field_within_its_range():
    x = jnp.full((4, 32, 32, 1), 0.5, jnp.float32)
    y, _ = augment(
        jax.random.key(3), x, jnp.zeros((4, 32, 32, 1), jnp.int32), AugmentConfig(**PHOTO_OFF, shading=0.2)
    )
    field = np.asarray(y)[..., 0] - 0.5
    assert np.abs(field).max() <= 0.2 * 1.3  # cubic interpolation overshoots its grid values a little
    assert field.reshape(4, -1).std(1).min() > 0.01  # uneven across each image
    assert np.abs(np.diff(field, axis=1)).max() < 0.1  # smooth: a 4x4 grid over 32 px, no jumps
    assert not np.allclose(field[0], field[1], atol=1e-3)  # a field of its own per image


def test_equalize_spreads_a_dark_image_over_the_whole_range():
    rng = np.random.default_rng(0)
    dark = ((rng.integers(0, 64, (1, 32, 32, 1)) + 0.5) / 256).astype(np.float32)  # level centres
    bright = dark + 160 / 256  # the same picture, exposed differently
    e_dark, e_bright = np.asarray(equalize(jnp.asarray(dark))), np.asarray(equalize(jnp.asarray(bright)))
    assert e_dark.max() == 1.0 and e_dark.min() < 0.05
    np.testing.assert_allclose(e_dark, e_bright, atol=1e-6)  # exposure no longer matters
    order = np.argsort(dark.ravel())  # brighter pixels stay brighter
    assert np.all(np.diff(e_dark.ravel()[order]) >= 0)


def test_task_equalizes_before_standardising():
    x = jnp.asarray(np.random.default_rng(1).uniform(0.1, 0.3, (2, 8, 8, 1)), jnp.float32)
    task = Segmentation(image_norm=True, equalize=True)
    plain = Segmentation(image_norm=True)
    np.testing.assert_allclose(task.normalize(x), plain.normalize(equalize(x)), atol=1e-6)
    assert not np.allclose(task.normalize(x), plain.normalize(x), atol=1e-2)

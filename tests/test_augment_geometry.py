"""The augmentation's ranges and geometry: the README's ±12°, ±2.5 px, ±10 % scale, brightness and contrast
±0.2 as numbers, and a warp that moves content where the maths says."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cnn
from jaxadl import AugmentConfig
from jaxadl.augment import _pose, _warp, augment
from jaxadl.data.base import Dataset, Split

OFF = dict(rotate_deg=0.0, translate_px=0.0, scale=0.0, brightness=0.0, contrast=0.0)
KEYS = jax.random.split(jax.random.key(0), 256)


def test_default_ranges_are_the_documented_numbers():
    cfg = AugmentConfig()
    assert (cfg.rotate_deg, cfg.translate_px, cfg.scale) == (12.0, 2.5, 0.10)
    assert (cfg.brightness, cfg.contrast, cfg.gamma, cfg.shading) == (0.2, 0.2, 0.0, 0.0)
    # the CNN's strong recipe (the CLI default) trains with exactly these ranges; the report recipe with none
    strong = cnn.build_variants(cnn.CNNConfig(dataset="synthetic"), _tiny_signs())
    aug = strong[0].train.augment
    assert (aug.rotate_deg, aug.translate_px, aug.scale, aug.brightness, aug.contrast) == (
        12.0,
        2.5,
        0.10,
        0.2,
        0.2,
    )
    report = cnn.build_variants(cnn.CNNConfig(dataset="synthetic", recipe="report"), _tiny_signs())
    assert report[0].train.augment is None


def _tiny_signs() -> Dataset:
    split = Split(np.zeros((2, 28, 28, 3), np.uint8), np.zeros(2, np.int32))
    return Dataset("tiny", split, split, None, 43)


def _poses(cfg: AugmentConfig, h: int = 32, w: int = 32):
    """The drawn (angle in degrees, zoom, shift) of 256 poses, read back from their affine maps."""
    matrices, offsets = jax.vmap(lambda k: _pose(k, cfg, h, w))(KEYS)
    m, o = np.asarray(matrices, np.float64), np.asarray(offsets, np.float64)
    angle = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    zoom = 1.0 / np.sqrt(np.linalg.det(m))  # matrix = rotation / zoom
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    shift = centre - np.einsum("nij,j->ni", m, centre) - o  # offset = centre - matrix @ centre - shift
    return angle, zoom, shift, m


def test_drawn_poses_stay_in_the_default_ranges_and_fill_them():
    angle, zoom, shift, m = _poses(AugmentConfig())
    # degrees, not radians: ±12° (±12 rad would wrap all round the circle)
    assert np.abs(angle).max() <= 12.0 + 1e-4 and np.abs(angle).max() > 11.0
    assert angle.min() < -11.0 and angle.max() > 11.0
    assert zoom.min() >= 0.9 - 1e-5 and zoom.max() <= 1.1 + 1e-5
    assert zoom.min() < 0.91 and zoom.max() > 1.09
    assert np.abs(shift).max() <= 2.5 + 1e-4 and np.abs(shift).max() > 2.4
    assert shift.min() < -2.4 and shift.max() > 2.4
    # a rotation times 1 / zoom: columns orthogonal and of equal length
    np.testing.assert_allclose(np.einsum("nij,nik->njk", m, m)[:, 0, 1], 0.0, atol=1e-6)


def test_a_rotation_only_pose_is_a_rotation_about_the_centre():
    angle, zoom, shift, m = _poses(AugmentConfig(**{**OFF, "rotate_deg": 12.0}))
    np.testing.assert_allclose(zoom, 1.0, atol=1e-6)
    np.testing.assert_allclose(shift, 0.0, atol=1e-4)
    rad = np.radians(angle)
    expected = np.stack(
        [np.stack([np.cos(rad), -np.sin(rad)], -1), np.stack([np.sin(rad), np.cos(rad)], -1)], 1
    )
    np.testing.assert_allclose(m, expected, atol=1e-6)


def test_warp_by_a_quarter_turn_moves_a_pixel_where_the_maths_says():
    image = jnp.zeros((9, 9, 1)).at[1, 6, 0].set(1.0)  # off-centre; the centre is (4, 4)
    quarter = jnp.array([[0.0, -1.0], [1.0, 0.0]])  # output (y, x) samples input quarter @ (y, x) + offset
    centre = jnp.array([4.0, 4.0])
    out = np.asarray(_warp(image, quarter, centre - quarter @ centre))
    # input (1, 6) = quarter @ (yo, xo) + offset: yo - 4 = 6 - 4 and -(xo - 4) = 1 - 4, so (6, 7)
    expected = np.zeros((9, 9, 1))
    expected[6, 7, 0] = 1.0
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # a shift only: the offset moves the content by minus itself
    moved = np.asarray(_warp(image, jnp.eye(2), jnp.array([-2.0, 1.0])))
    assert np.argwhere(moved[..., 0] > 0.5).tolist() == [[3, 5]]


def _centroids(images: np.ndarray) -> np.ndarray:
    """Intensity-weighted (y, x) of each image [B, H, W, 1]."""
    w = images[..., 0]
    yy, xx = np.meshgrid(np.arange(w.shape[1]), np.arange(w.shape[2]), indexing="ij")
    total = w.sum((1, 2))
    return np.stack([(w * yy).sum((1, 2)) / total, (w * xx).sum((1, 2)) / total], -1)


BLOB = np.zeros((33, 33, 1), np.float32)
BLOB[15:18, 27:30] = 1.0  # centred at (16, 28): 12 px right of the image centre (16, 16)


def _augmented_blobs(cfg: AugmentConfig, n: int = 32) -> np.ndarray:
    x = jnp.broadcast_to(jnp.asarray(BLOB), (n, *BLOB.shape))
    out, _ = augment(jax.random.key(7), x, jnp.zeros((n,), jnp.int32), cfg)
    return np.asarray(out, np.float64)


def test_rotation_turns_content_about_the_centre_by_at_most_12_degrees():
    out = _augmented_blobs(AugmentConfig(**{**OFF, "rotate_deg": 12.0}))
    rel = _centroids(out) - 16.0
    np.testing.assert_allclose(np.hypot(rel[:, 0], rel[:, 1]), 12.0, atol=0.05)  # the radius is kept
    turned = np.degrees(np.arctan2(rel[:, 0], rel[:, 1]))  # the blob started at angle 0
    assert np.abs(turned).max() <= 12.1 and np.abs(turned).max() > 11.0
    assert turned.min() < -5.0 and turned.max() > 5.0  # both ways


def test_translation_and_scale_move_content_within_their_ranges():
    moved = _centroids(_augmented_blobs(AugmentConfig(**{**OFF, "translate_px": 2.5}))) - [16.0, 28.0]
    assert np.abs(moved).max() <= 2.5 + 0.05 and np.abs(moved).max() > 2.0
    scaled = _centroids(_augmented_blobs(AugmentConfig(**{**OFF, "scale": 0.1})))
    np.testing.assert_allclose(scaled[:, 0], 16.0, atol=0.05)  # along the ray from the centre
    ratio = (scaled[:, 1] - 16.0) / 12.0  # output = centre + zoom * (input - centre)
    assert ratio.min() >= 0.9 - 0.01 and ratio.max() <= 1.1 + 0.01
    assert ratio.min() < 0.93 and ratio.max() > 1.07


def test_brightness_and_contrast_stay_in_their_ranges():
    flat = jnp.full((64, 4, 4, 1), 0.5)
    bright, _ = augment(
        jax.random.key(1), flat, jnp.zeros((64,), jnp.int32), AugmentConfig(**{**OFF, "brightness": 0.2})
    )
    shift = np.asarray(bright)[:, 0, 0, 0] - 0.5
    np.testing.assert_allclose(  # one shift per image
        np.asarray(bright), np.broadcast_to(shift[:, None, None, None] + 0.5, bright.shape), atol=1e-6
    )
    assert np.abs(shift).max() <= 0.2 + 1e-6 and shift.min() < -0.17 and shift.max() > 0.17
    two = jnp.broadcast_to(jnp.array([0.25, 0.75]).reshape(1, 1, 2, 1), (64, 1, 2, 1))
    contrasted, _ = augment(
        jax.random.key(2), two, jnp.zeros((64,), jnp.int32), AugmentConfig(**{**OFF, "contrast": 0.2})
    )
    factor = (np.asarray(contrasted)[:, 0, 1, 0] - np.asarray(contrasted)[:, 0, 0, 0]) / 0.5
    np.testing.assert_allclose(np.asarray(contrasted).mean((1, 2, 3)), 0.5, atol=1e-6)  # about the mean
    assert factor.min() >= 0.8 - 1e-5 and factor.max() <= 1.2 + 1e-5
    assert factor.min() < 0.83 and factor.max() > 1.17

"""On-device data augmentation inside the scanned epoch: random affine pose and photometric jitter.

No flips: most traffic signs are not mirror-symmetric (a left arrow would become a right arrow).
For segmentation the same geometric warp is applied to the mask (bilinear, re-thresholded at 0.5).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; zeros switch a transform off."""

    rotate_deg: float = 12.0
    translate_px: float = 2.5
    scale: float = 0.10  # zoom drawn from [1 - scale, 1 + scale]
    brightness: float = 0.2  # additive shift drawn from [-b, b], in [0, 1] units
    contrast: float = 0.2  # factor drawn from [1 - c, 1 + c] around the image mean
    gamma: float = 0.0  # pixels raised to exp(u), u drawn from [-g, g]: exposure changes dark and light apart
    shading: float = 0.0  # a smooth field on a 4x4 grid drawn in [-s, s], added: uneven density
    aspect: float = (
        0.0  # width alone stretched by a factor drawn from [1 - a, 1 + a]: a wider or narrower chest
    )
    elastic: float = 0.0  # a smooth displacement field on a 4x4 grid, each component drawn in [-e, e] pixels

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not value >= 0:  # NaN too
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("scale", "contrast", "aspect"):
            if getattr(self, name) >= 1:
                raise ValueError(f"{name} must be < 1, got {getattr(self, name)}")

    @property
    def geometric(self) -> bool:
        return bool(self.rotate_deg or self.translate_px or self.scale or self.aspect or self.elastic)


def _warp(
    image: jnp.ndarray, matrix: jnp.ndarray, offset: jnp.ndarray, shift: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Sample image [H, W, C] at matrix @ (y, x) + offset + shift[:, y, x] for every output pixel (bilinear,
    edge-padded); `shift` [2, H, W], when given, is the elastic displacement."""
    h, w = image.shape[:2]
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    coords = jnp.einsum("ij,jhw->ihw", matrix, jnp.stack([yy, xx])) + offset[:, None, None]
    if shift is not None:
        coords = coords + shift
    channels = [
        map_coordinates(image[..., c], [coords[0], coords[1]], order=1, mode="nearest")
        for c in range(image.shape[-1])
    ]
    return jnp.stack(channels, axis=-1)


def _pose(key: jax.Array, cfg: AugmentConfig, h: int, w: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A random inverse affine map (output pixel -> input pixel) about the image centre."""
    k1, k2, k3 = jax.random.split(key, 3)
    angle = jnp.deg2rad(jax.random.uniform(k1, (), minval=-cfg.rotate_deg, maxval=cfg.rotate_deg))
    zoom = jax.random.uniform(k2, (), minval=1.0 - cfg.scale, maxval=1.0 + cfg.scale)
    shift = jax.random.uniform(k3, (2,), minval=-cfg.translate_px, maxval=cfg.translate_px)
    c, s = jnp.cos(angle), jnp.sin(angle)
    matrix = jnp.array([[c, -s], [s, c]]) / zoom
    if cfg.aspect:  # its own key: the other draws stay those of a config without it
        stretch = jax.random.uniform(
            jax.random.fold_in(key, 5), (), minval=1 - cfg.aspect, maxval=1 + cfg.aspect
        )
        matrix = matrix @ jnp.diag(jnp.array([1.0, 1.0 / stretch]))
    centre = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offset = centre - matrix @ centre - shift
    return matrix, offset


def augment(
    key: jax.Array, images: jnp.ndarray, labels: jnp.ndarray, cfg: AugmentConfig
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Randomly transform a batch of float images in [0, 1] [B, H, W, C]; masks [B, H, W, 1] move with them."""
    b, h, w, _ = images.shape
    keys = jax.random.split(key, 3)
    is_mask = labels.ndim == images.ndim
    if cfg.geometric:
        matrices, offsets = jax.vmap(lambda k: _pose(k, cfg, h, w))(jax.random.split(keys[0], b))
        shifts = None
        if cfg.elastic:  # a smooth field: cubic from a 4x4 grid, like the shading
            grid = jax.random.uniform(
                jax.random.fold_in(key, 6), (b, 2, 4, 4), minval=-cfg.elastic, maxval=cfg.elastic
            )
            shifts = jax.image.resize(grid, (b, 2, h, w), method="cubic")
        warp = jax.vmap(_warp, in_axes=(0, 0, 0, None if shifts is None else 0))
        images = warp(images, matrices, offsets, shifts)
        if is_mask:
            warped = warp(labels.astype(jnp.float32), matrices, offsets, shifts)
            labels = (warped > 0.5).astype(labels.dtype)
    if cfg.gamma:
        exponent = jnp.exp(
            jax.random.uniform(jax.random.fold_in(key, 3), (b, 1, 1, 1), minval=-cfg.gamma, maxval=cfg.gamma)
        )
        images = jnp.clip(images, 0.0, 1.0) ** exponent
    if cfg.shading:
        grid = jax.random.uniform(
            jax.random.fold_in(key, 4), (b, 4, 4, 1), minval=-cfg.shading, maxval=cfg.shading
        )
        images = images + jax.image.resize(grid, (b, h, w, 1), method="cubic")
    if cfg.contrast:
        factor = jax.random.uniform(keys[1], (b, 1, 1, 1), minval=1 - cfg.contrast, maxval=1 + cfg.contrast)
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        images = (images - mean) * factor + mean
    if cfg.brightness:
        images = images + jax.random.uniform(
            keys[2], (b, 1, 1, 1), minval=-cfg.brightness, maxval=cfg.brightness
        )
    return jnp.clip(images, 0.0, 1.0), labels

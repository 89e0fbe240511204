"""Synthetic chest radiographs with lung masks, generated in numpy: an offline, deterministic stand-in for JSRT."""

from __future__ import annotations

import math

import numpy as np

from jaxadl.data.base import Dataset, DatasetError, Split
from jaxadl.data.lungs.images import check_size
from jaxadl.data.lungs.prepare import lung_dataset

_SPLITS = ("train", "val", "test")


def _box_blur(img: np.ndarray, radius: int) -> np.ndarray:
    """Separable box blur with edge padding along the last two axes (radius 0 = identity)."""
    if radius <= 0:
        return img
    k = 2 * radius + 1
    for axis in (-2, -1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis)
        n = img.shape[axis]
        img = (np.take(c, range(k, k + n), axis=axis) - np.take(c, range(0, n), axis=axis)) / k
    return img


def _ellipse(
    x: np.ndarray, y: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], angle: float
) -> np.ndarray:
    """Normalised ellipse radius (<1 inside) on a coordinate grid."""
    (cx, cy), (ax, ay) = centre, axes
    c, s = math.cos(angle), math.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return np.sqrt((u / ax) ** 2 + (v / ay) ** 2)


def _synthetic_case(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One radiograph (uint8) and its lung mask (uint8 {0,1}) on the coordinate grid x, y in [-1, 1]."""
    u = rng.uniform
    size = x.shape[0]
    # Body / thorax with soft edges, on a dark background with an intensity gradient.
    body_r = _ellipse(x, y, (u(-0.05, 0.05), u(0.0, 0.12)), (u(0.78, 0.95), u(0.95, 1.15)), u(-0.08, 0.08))
    body = 1.0 / (1.0 + np.exp((body_r - 1.0) * u(12, 25)))
    img = u(0.02, 0.15) + body * u(0.5, 0.75)
    # Lungs: bean shapes from two ellipses each, the cardiac notch cut from the patient's left lung.
    sep, top = u(0.28, 0.4), u(-0.2, 0.0)
    tilt = u(-0.12, 0.12)
    lungs = np.zeros(x.shape, bool)
    for side in (-1.0, 1.0):
        cx = side * (sep + u(-0.04, 0.04))
        ax, ay = u(0.2, 0.29), u(0.45, 0.6)
        ang = side * u(0.05, 0.22) + tilt
        lung = _ellipse(x, y, (cx, top), (ax, ay), ang) < 1.0
        lung |= (
            _ellipse(x, y, (cx + side * u(0.0, 0.06), top + ay * 0.45), (ax * u(1.0, 1.25), ay * 0.55), ang)
            < 1.0
        )
        lung &= y > top - ay * u(0.8, 0.95)  # flatter apex
        if side > 0:  # image right = patient's left: the heart indents the medial lower part
            notch = _ellipse(
                x, y, (u(0.02, 0.12), top + ay * u(0.35, 0.6)), (u(0.2, 0.3), u(0.22, 0.32)), u(-0.4, 0.4)
            )
            lung &= notch > 1.0
        lungs |= lung
    lung_depth = u(0.35, 0.6)
    soft_lungs = _box_blur(lungs.astype(np.float32), max(1, size // 96))
    img = img * (1.0 - lung_depth * soft_lungs)
    # Mediastinum / heart: a bright blob between the lungs.
    heart = (
        _ellipse(x, y, (u(0.0, 0.12), top + u(0.3, 0.45)), (u(0.22, 0.3), u(0.25, 0.35)), u(-0.3, 0.3)) < 1.0
    )
    img = img + heart * (~lungs) * u(0.05, 0.15)
    # Ribs: curved stripes across the thorax, visible over the lungs too.
    freq, phase, curve = u(11, 16), u(0, 2 * math.pi), u(0.4, 0.9)
    ribs = np.clip(np.sin(freq * (y - curve * x**2) + phase), 0.0, 1.0) ** 2
    img = img + ribs * body * u(0.04, 0.12) * (np.abs(x) > u(0.05, 0.12))
    # Distractors outside the lungs: dark blobs (gastric bubble, clothing) and bright markers.
    for _ in range(int(rng.integers(1, 4))):
        blob = (
            _ellipse(x, y, (u(-0.9, 0.9), u(-0.9, 0.95)), (u(0.05, 0.18), u(0.04, 0.14)), u(0, math.pi)) < 1.0
        )
        img = np.where(blob & ~lungs, img * u(0.3, 0.6), img)
    if u() < 0.5:
        mark = _ellipse(x, y, (u(-0.9, 0.9), u(-0.95, -0.6)), (u(0.03, 0.08), u(0.03, 0.08)), 0.0) < 1.0
        img = np.where(mark, u(0.85, 1.0), img)
    # Global gradient, blur, gamma / contrast / brightness, noise.
    gx, gy = u(-0.15, 0.15), u(-0.15, 0.15)
    img = img + gx * x + gy * y
    img = _box_blur(img, int(rng.integers(0, 3)) * max(1, size // 128))
    img = np.clip(img, 0.0, 1.0) ** u(0.7, 1.4)
    img = img * u(0.75, 1.2) + u(-0.08, 0.08)
    img = img + rng.normal(0.0, u(0.01, 0.05), img.shape)
    pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return pixels, lungs.astype(np.uint8)


def synthetic_lungs(
    n_train: int = 112, n_val: int = 12, n_test: int = 123, *, image_size: int = 256, seed: int = 0
) -> Dataset:
    """Deterministic chest-like radiographs with lung masks, generated in numpy (offline stand-in for JSRT).

    Each image: soft thorax, two bean-shaped darker lungs (one with a cardiac notch), heart, ribs,
    dark distractor blobs outside the lungs, gradient, blur, gamma/contrast/brightness and noise.
    """
    check_size(image_size)
    coords = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, (split, n) in enumerate(zip(_SPLITS, (n_train, n_val, n_test), strict=True)):
        if n < 0:
            raise DatasetError(f"n_{split} must be >= 0, got {n}")
        rng = np.random.default_rng([seed, k])
        cases = [_synthetic_case(rng, x, y) for _ in range(n)]
        shape = (n, image_size, image_size, 1)
        arrays[split] = (
            np.stack([c[0] for c in cases]).reshape(shape) if n else np.zeros(shape, np.uint8),
            np.stack([c[1] for c in cases]).reshape(shape) if n else np.zeros(shape, np.uint8),
        )
    meta = {"seed": seed, "image_size": image_size, "synthetic": True}
    splits = {k: Split(x, y) for k, (x, y) in arrays.items() if len(x)}
    return lung_dataset("synthetic-lungs", splits, meta)

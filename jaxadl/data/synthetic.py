"""Procedural traffic signs: an offline, deterministic stand-in for GTSRB (43 classes).

The class templates come from :mod:`jaxadl.data.sign_art`. Every sample then gets, fully vectorised
in numpy: a random affine pose (translation, scale, rotation, aspect and shear) sampled at 2x and
box-reduced (antialiasing), a cluttered background (gradient, soft blobs, lines), sign fading,
occasional partial occlusion, brightness / contrast / colour cast / gamma, mild blur and gaussian noise.
"""

from __future__ import annotations

import numpy as np

from jaxadl.data.base import Dataset, Split
from jaxadl.data.sign_art import class_templates
from jaxadl.data.signs import CLASS_NAMES, NUM_CLASSES

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "class_templates", "synthetic_signs"]

_SUPERSAMPLE = 2  # pose warp is sampled at this multiple of the output size, then box-reduced
_CHUNK = 1024  # samples processed at once (bounds memory; fixed so results never depend on it)


def _pack(templates: np.ndarray) -> np.ndarray:
    """Templates float [K, T, T, 4] in [0, 1] as a flat uint32 RGBA table [K * (T + 2) ** 2].

    Each template gets a transparent one-pixel border; one gather fetches a whole RGBA pixel.
    """
    q = np.pad(np.round(templates * 255).astype(np.uint8), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return np.ascontiguousarray(q).reshape(-1, 4).view(np.uint32).ravel()


def _warp(
    table: np.ndarray, t: int, labels: np.ndarray, inv: np.ndarray, shift: np.ndarray, out: int
) -> np.ndarray:
    """Nearest-neighbour inverse-affine sampling of each sample's template: uint8 [n, out, out, 4].

    table: `_pack` of templates of side t; inv: [n, 2, 2] maps output offsets from the image centre
    (pixels) to template offsets; shift: [n, 2] is the sign centre's offset in output pixels. Outside
    the template everything is transparent. Sampled at a multiple of the final size, then box-reduced.
    """
    g = np.arange(out, dtype=np.float32) + 0.5 - out / 2
    dx = g[None, None, :] - shift[:, 0, None, None]
    dy = g[None, :, None] - shift[:, 1, None, None]
    u = inv[:, 0, 0, None, None] * dx + inv[:, 0, 1, None, None] * dy + (t / 2 + 1)  # +1: the border
    v = inv[:, 1, 0, None, None] * dx + inv[:, 1, 1, None, None] * dy + (t / 2 + 1)
    x = np.clip(u, 0.0, t + 1.5, out=u).astype(np.int32)
    y = np.clip(v, 0.0, t + 1.5, out=v).astype(np.int32)
    idx = (labels[:, None, None] * (t + 2) + y) * (t + 2) + x
    return table.take(idx).view(np.uint8).reshape(*idx.shape, 4)


def _box_reduce(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of uint8 x, as float32 in [0, 1]: [n, h, w, c] -> [n, h / f, w / f, c]."""
    acc = x[:, 0::f, 0::f].astype(np.float32)
    for i in range(f):
        for j in range(f):
            if i or j:
                acc += x[:, i::f, j::f]
    return acc * np.float32(1 / (255 * f * f))


def _colours(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random RGB colours [*shape, 3], float32, with random saturation (many are muted, as outdoors)."""
    c = rng.uniform(0, 1, (*shape, 3))
    grey = c.mean(axis=-1, keepdims=True)
    return (grey + (c - grey) * rng.uniform(0.2, 1.0, (*shape, 1))).astype(np.float32)


def _soft_shapes(rng: np.random.Generator, n: int, s: int, count: int, canvas: np.ndarray) -> np.ndarray:
    """Composite `count` random soft ellipses and lines (40%) of random colour onto canvas [n, s, s, 3]."""
    f32 = np.float32
    g = np.arange(s, dtype=f32) + 0.5
    xx, yy = g[None, None, :], g[None, :, None]
    colour = _colours(rng, (count, n, 1, 1))
    opacity = rng.uniform(0.3, 1.0, (count, n, 1, 1)).astype(f32)
    cx, cy = rng.uniform(-0.1, 1.1, (2, count, n, 1, 1)) * s
    theta = rng.uniform(0, np.pi, (count, n, 1, 1))
    is_line = rng.random((count, n, 1, 1)) < 0.4
    ra = np.where(is_line, 10.0 * s, rng.uniform(0.06, 0.4, (count, n, 1, 1)) * s)
    rb = np.where(is_line, rng.uniform(0.02, 0.06, (count, n, 1, 1)) * s, ra * rng.uniform(0.3, 1, ra.shape))
    c, sn = np.cos(theta), np.sin(theta)
    # Normalised ellipse coordinates a = along / ra, b = across / rb as affine functions of (x, y).
    ax, ay, a0 = (c / ra).astype(f32), (sn / ra).astype(f32), (-(cx * c + cy * sn) / ra).astype(f32)
    bx, by, b0 = (-sn / rb).astype(f32), (c / rb).astype(f32), ((cx * sn - cy * c) / rb).astype(f32)
    sharp = (np.maximum(rb, 1.0) / 1.5).astype(f32)  # about a 1.5-pixel soft edge
    for k in range(count):
        a = xx * ax[k] + yy * ay[k] + a0[k]
        b = xx * bx[k] + yy * by[k] + b0[k]
        d = np.sqrt(a * a + b * b)
        mask = np.clip((1.0 - d) * sharp[k] + 0.5, 0.0, 1.0) * opacity[k]
        canvas += (colour[k] - canvas) * mask[..., None]
    return canvas


def _background(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """Cluttered backgrounds: a two-colour linear gradient plus soft blobs and lines, [n, s, s, 3]."""
    c0, c1 = _colours(rng, (2, n, 1, 1))
    theta = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1)).astype(np.float32)
    g = (np.arange(s, dtype=np.float32) + 0.5) / s - 0.5
    t = np.cos(theta) * g[None, None, :, None] + np.sin(theta) * g[None, :, None, None] + 0.5
    canvas = c0 + (c1 - c0) * t
    return _soft_shapes(rng, n, s, 4, canvas)


def _blur(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-sample separable 3-tap gaussian blur; sigma [n] in pixels (0 = none)."""
    w1 = np.exp(-0.5 / np.maximum(sigma, 1e-3) ** 2).astype(np.float32)[:, None, None, None]
    norm = 1 + 2 * w1
    p = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)), mode="edge")
    x = (p[:, 1:-1] + w1 * (p[:, :-2] + p[:, 2:])) / norm
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :, 1:-1] + w1 * (p[:, :, :-2] + p[:, :, 2:])) / norm


def _render(rng: np.random.Generator, table: np.ndarray, labels: np.ndarray, s: int) -> np.ndarray:
    """Render labelled samples at s x s: uint8 [n, s, s, 3]."""
    n = len(labels)
    f32 = np.float32
    hi = s * _SUPERSAMPLE
    # Pose: output = M @ template + shift, M = scale * rotation * [[aspect, shear], [0, 1 / aspect]].
    scale = rng.uniform(0.75, 1.05, n)
    ang = np.radians(rng.uniform(-12, 12, n))
    aspect = np.exp(rng.uniform(-0.08, 0.08, n))
    shear = rng.uniform(-0.1, 0.1, n)
    shift = rng.uniform(-0.1, 0.1, (n, 2)) * hi
    c, sn = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
    shape = np.zeros((n, 2, 2))
    shape[:, 0, 0], shape[:, 0, 1], shape[:, 1, 1] = aspect, shear, 1 / aspect
    m = scale[:, None, None] * rot @ shape
    inv = np.linalg.inv(m).astype(f32)
    sign = _box_reduce(_warp(table, hi, labels, inv, shift.astype(f32), hi), _SUPERSAMPLE)
    rgb, alpha = sign[..., :3], sign[..., 3:]
    # Sign wear: fading towards grey and a shadow/highlight factor, before compositing.
    fade = rng.uniform(0.0, 0.25, (n, 1, 1, 1)).astype(f32)
    light = rng.uniform(0.75, 1.15, (n, 1, 1, 1)).astype(f32)
    rgb = (rgb + (0.55 * alpha - rgb) * fade) * light
    img = rgb + (1 - alpha) * _background(rng, n, s)
    # Occasional occlusion: one more random blob or line, in front of the sign.
    occluded = rng.random(n) < 0.1
    if occluded.any():
        idx = np.flatnonzero(occluded)
        img[idx] = _soft_shapes(rng, len(idx), s, 1, img[idx])
    # Global photometric changes.
    contrast = rng.uniform(0.75, 1.2, (n, 1, 1, 1)).astype(f32)
    bright = rng.uniform(-0.15, 0.12, (n, 1, 1, 1)).astype(f32)
    cast = rng.uniform(0.85, 1.15, (n, 1, 1, 3)).astype(f32)
    gamma = np.exp(rng.uniform(-0.35, 0.35, (n, 1, 1, 1))).astype(f32)
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = ((img - mean) * contrast + mean + bright) * cast
    img = np.clip(img, 0.0, 1.0) ** gamma
    img = _blur(img, rng.uniform(0.0, 0.7, n))
    img = img + rng.standard_normal(img.shape, dtype=f32) * rng.uniform(0.005, 0.04, (n, 1, 1, 1)).astype(f32)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _split(seq: np.random.SeedSequence, n: int, table: np.ndarray, s: int) -> Split:
    """n balanced samples in a random order, rendered in fixed-size chunks from one generator."""
    rng = np.random.default_rng(seq)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int32)
    images = np.empty((n, s, s, 3), np.uint8)
    for lo in range(0, n, _CHUNK):
        images[lo : lo + _CHUNK] = _render(rng, table, labels[lo : lo + _CHUNK], s)
    return Split(images, labels)


def synthetic_signs(
    n_train: int = 8600, n_val: int = 860, n_test: int = 4300, *, image_size: int = 28, seed: int = 0
) -> Dataset:
    """Procedural 43-class traffic signs (GTSRB-like), balanced, deterministic under `seed`.

    Images are uint8 [N, S, S, 3], labels int32 [N]; a split of size 0 is None (train: empty).
    Splits come from disjoint sub-seeds of `seed`.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    table = _pack(class_templates(image_size * _SUPERSAMPLE))
    seqs = np.random.SeedSequence(seed).spawn(3)
    train, val, test = (
        _split(q, n, table, image_size) for q, n in zip(seqs, (n_train, n_val, n_test), strict=True)
    )
    return Dataset(
        name="synthetic-signs",
        train=train,
        val=val if n_val else None,
        test=test if n_test else None,
        num_classes=NUM_CLASSES,
        meta={
            "source": "procedural",
            "image_size": image_size,
            "seed": seed,
            "class_names": list(CLASS_NAMES),
        },
    )

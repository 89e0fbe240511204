"""Test-time augmentation: average a model's logits over the image and its four one-pixel shifts.

Segmentation logits are shifted back before averaging, so each output pixel stays over its input pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shift(x: jnp.ndarray, dy: int, dx: int) -> jnp.ndarray:
    """out[:, i, j] = x[:, i + dy, j + dx], edges repeated: [B, H, W, C] -> same shape."""
    h, w = x.shape[1:3]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    return padded[:, p + dy : p + dy + h, p + dx : p + dx + w]


def tta_logits(apply: Callable[[jnp.ndarray], jnp.ndarray], x: jnp.ndarray) -> jnp.ndarray:
    """Mean of `apply` over the shifted views of x; dense (4-D) logits are shifted back first."""
    outs = []
    for dy, dx in SHIFTS:
        out = apply(shift(x, dy, dx))
        outs.append(shift(out, -dy, -dx) if out.ndim == 4 else out)
    return jnp.mean(jnp.stack(outs), axis=0)

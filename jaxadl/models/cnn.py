"""The report's traffic-sign CNN (section 1.1.1), optionally with batch norm after each conv (1.2)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2×2 max-pool, stride 2, VALID (an odd last row or column is dropped), NHWC, as a reshape and max."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class SignCNN(nn.Module):
    """conv5x5 3->64, conv5x5 64->32, maxpool2, conv3x3 32->32, maxpool2, dense 512->43; VALID, ReLU.

    Returns logits (no ReLU on them, unlike the report's listing, which would clip negative scores).
    With `batch_norm`, BatchNorm follows each conv: batch statistics when `train`, running averages
    otherwise (Flax momentum 0.9 = PyTorch momentum 0.1); `mask` ([N] bool) leaves padding rows out of
    the batch statistics. `fast_pool` (default) computes the 2×2 max-pool
    as a reshape and max: the same values as `nn.max_pool`, and a gradient that XLA:CPU runs several times
    faster than nn.max_pool's select-and-scatter; False uses nn.max_pool (a tie inside a window then sends
    the whole gradient to one element instead of splitting it).
    """

    num_classes: int = 43
    batch_norm: bool = False
    fast_pool: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False, mask: jnp.ndarray | None = None) -> jnp.ndarray:
        rows = None if mask is None else mask[:, None, None, None]

        def block(x: jnp.ndarray, features: int, kernel: int, name: str) -> jnp.ndarray:
            x = nn.Conv(features, (kernel, kernel), padding="VALID", dtype=self.dtype, name=name)(x)
            if self.batch_norm:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    dtype=self.dtype,
                    name=f"bn{name[-1]}",
                )(x, mask=rows)
            return nn.relu(x)

        pool = max_pool_2x2 if self.fast_pool else lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
        x = block(x, 64, 5, "conv1")
        x = block(x, 32, 5, "conv2")
        x = pool(x)
        x = block(x, 32, 3, "conv3")
        x = pool(x)
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x).astype(jnp.float32)

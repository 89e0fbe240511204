"""The report's traffic-sign CNN (section 1.1.1), optionally with batch norm after each conv (1.2)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SignCNN(nn.Module):
    """conv5x5 3->64, conv5x5 64->32, maxpool2, conv3x3 32->32, maxpool2, dense 512->43; VALID, ReLU.

    Returns logits (no ReLU on them, unlike the report's listing, which would clip negative scores).
    With `batch_norm`, BatchNorm follows each conv: batch statistics when `train`, running averages
    otherwise (Flax momentum 0.9 = PyTorch momentum 0.1).
    """

    num_classes: int = 43
    batch_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        def block(x: jnp.ndarray, features: int, kernel: int, name: str) -> jnp.ndarray:
            x = nn.Conv(features, (kernel, kernel), padding="VALID", dtype=self.dtype, name=name)(x)
            if self.batch_norm:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    dtype=self.dtype,
                    name=f"bn{name[-1]}",
                )(x)
            return nn.relu(x)

        x = block(x, 64, 5, "conv1")
        x = block(x, 32, 5, "conv2")
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = block(x, 32, 3, "conv3")
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x).astype(jnp.float32)

"""jaxadl's SignCNN and UNet in PyTorch, layer for layer, for side-by-side benchmarks and parity tests.

Names follow the report's listings for the CNN (``conv1 conv2 conv3 fc1``, ``batch1..3``) and
``jaxadl.porting`` for the U-Net; ``jaxadl.porting.to_torch_state_dict`` fills either from jaxadl weights.
Inputs are NCHW floats; outputs are logits (NC for the CNN, NCHW for the U-Net). Requires torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Flax BatchNorm(momentum=0.9, epsilon=1e-5) == PyTorch BatchNorm2d(momentum=0.1, eps=1e-5)
BN_MOMENTUM, BN_EPS = 0.1, 1e-5


class TorchSignCNN(nn.Module):
    """conv5x5 3->64, conv5x5 64->32, maxpool2, conv3x3 32->32, maxpool2, fc 512->43; ReLU; raw logits."""

    def __init__(self, batch_norm: bool = False, num_classes: int = 43, in_features: int = 512):
        super().__init__()
        self.batch_norm = batch_norm
        self.conv1 = nn.Conv2d(3, 64, kernel_size=5)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(in_features, num_classes)
        if batch_norm:
            self.batch1 = nn.BatchNorm2d(64, eps=BN_EPS, momentum=BN_MOMENTUM)
            self.batch2 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
            self.batch3 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)

    def _block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        x = getattr(self, f"conv{i}")(x)
        if self.batch_norm:
            x = getattr(self, f"batch{i}")(x)
        return F.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self._block(self._block(x, 1), 2))
        x = self.pool2(self._block(x, 3))
        return self.fc1(torch.flatten(x, 1))


class _Block(nn.Module):
    """Two same-padded 3x3 convs, each optionally followed by BatchNorm, then the activation."""

    def __init__(self, cin: int, cout: int, batch_norm: bool, act):
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batch_norm)
        if batch_norm:
            self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
            self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.batch_norm = batch_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.batch_norm:
            x = self.bn1(x)
        x = self.act(x)
        x = self.conv2(x)
        if self.batch_norm:
            x = self.bn2(x)
        return self.act(x)


class TorchUNet(nn.Module):
    """jaxadl.UNet in PyTorch: same levels, same upsample-then-conv decoder, same names as jaxadl.porting.

    ``up.<level>`` is the 2x2 stride-2 ConvTranspose2d (``upsample="transpose"``) or the 3x3 conv that
    follows a x2 resize. Bilinear resize uses ``align_corners=False`` (half-pixel centres), which equals
    ``jax.image.resize(..., "bilinear")`` when upsampling (its antialiasing only widens the kernel when
    downsampling; at the borders both end up on the edge pixel). Nearest: output i <- input i // 2 in both.
    """

    def __init__(
        self,
        depth: int = 4,
        base_features: int = 16,
        upsample: str = "bilinear",
        activation: str = "relu",
        batch_norm: bool = False,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
    ):
        super().__init__()
        if upsample not in ("bilinear", "nearest", "transpose"):
            raise ValueError(f"unknown upsample {upsample!r}")
        if activation not in ("relu", "elu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.depth, self.upsample = depth, upsample
        act = F.relu if activation == "relu" else F.elu
        width = [base_features * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(
            [
                _Block(in_channels if lv == 0 else width[lv - 1], width[lv], batch_norm, act)
                for lv in range(depth)
            ]
        )
        self.bottom = _Block(in_channels if depth == 0 else width[depth - 1], width[depth], batch_norm, act)
        if upsample == "transpose":
            up = [nn.ConvTranspose2d(width[lv + 1], width[lv], 2, stride=2) for lv in range(depth)]
        else:
            up = [nn.Conv2d(width[lv + 1], width[lv], 3, padding=1) for lv in range(depth)]
        self.up = nn.ModuleList(up)
        self.dec = nn.ModuleList([_Block(2 * width[lv], width[lv], batch_norm, act) for lv in range(depth)])
        self.head = nn.Conv2d(width[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in range(self.depth):
            x = self.down[level](x)
            skips.append(x)
            x = F.max_pool2d(x, 2, 2)
        x = self.bottom(x)
        for level in reversed(range(self.depth)):
            if self.upsample == "bilinear":
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            elif self.upsample == "nearest":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.up[level](x)
            x = self.dec[level](torch.cat([skips[level], x], dim=1))
        return self.head(x)

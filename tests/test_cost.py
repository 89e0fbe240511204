"""FLOP counts as documented: XLA's cost analysis (a multiply-add counts 2) against counts made by hand.

README: the default U-Net has 2,158,417 parameters and costs 9.08 GFLOP per 256×256×1 image forward; the
UNet docstring adds the transposed-convolution variant (1,940,817, 5.91 GFLOP). GUIDE: the CNN's forward
pass is ~47.7 MFLOP per image (2 per multiply-add of its convolutions and dense layer), conv2 alone 41.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from benchmarks.jax_side import cost_flops
from jaxadl.models import SignCNN
from jaxadl.models.unet import unet_cost


def _same_conv(n: int, cin: int, cout: int, k: int = 3) -> int:
    """A same-padded k×k conv on n×n: 2 per multiply-add over the taps that fall on the image, + bias."""
    taps = (k * n - 2 * (k // 2)) ** 2  # per output row/column, the taps inside the image, summed
    return 2 * taps * cin * cout + n * n * cout


def _bilinear_x2(n: int, c: int) -> int:
    """jax.image.resize ×2 of n×n×c: one matrix product per axis (2 per multiply-add)."""
    return 2 * (2 * n) * n * (n * c) + 2 * (2 * n) * n * (2 * n * c)


def _unet_by_hand(depth: int, width: int, size: int, upsample: str = "bilinear") -> int:
    """Forward FLOPs of UNet(depth, width, upsample) on size×size×1: convs, biases, ReLUs (1 per element),
    2×2 max-pools (3 comparisons per output), ×2 upsampling, the 1×1 head."""
    total, n, c = 0, size, 1
    for level in range(depth):
        f = width * 2**level
        total += _same_conv(n, c, f) + n * n * f + _same_conv(n, f, f) + n * n * f
        c, n = f, n // 2
        total += 3 * n * n * f
    f = width * 2**depth
    total += _same_conv(n, c, f) + n * n * f + _same_conv(n, f, f) + n * n * f
    c = f
    for level in reversed(range(depth)):
        f = width * 2**level
        if upsample == "transpose":  # 2×2 stride 2: each output pixel meets one tap
            total += 2 * (2 * n) ** 2 * c * f + (2 * n) ** 2 * f
        else:
            total += _bilinear_x2(n, c) + _same_conv(2 * n, c, f)
        n *= 2
        total += _same_conv(n, 2 * f, f) + n * n * f + _same_conv(n, f, f) + n * n * f
        c = f
    return total + 2 * n * n * c + n * n  # the 1×1 head to one channel


def _forward_flops(module: nn.Module, shape: tuple[int, ...]) -> float:
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)  # shapes only: nothing runs
    return cost_flops(jax.jit(module.apply).lower(variables, x).compile())


def test_one_conv_counts_two_flops_per_multiply_add():
    # 3×3 same conv 1 -> 4 on 16×16: per axis 3·16 - 2 = 46 taps fall on the image, 46² · 4 multiply-adds
    assert _forward_flops(nn.Conv(4, (3, 3), use_bias=False), (1, 16, 16, 1)) == 2 * 46 * 46 * 4 == 16_928
    assert _forward_flops(nn.Conv(4, (3, 3)), (1, 16, 16, 1)) == 16_928 + 16 * 16 * 4  # + the bias adds
    assert _forward_flops(nn.Dense(43), (1, 512)) == 2 * 512 * 43 + 43
    assert _same_conv(16, 1, 4) == 16_928 + 1024


@pytest.mark.parametrize(
    "depth,width,size,upsample,by_hand",
    [(0, 4, 16, "bilinear", 91_040), (1, 4, 16, "transpose", 411_424), (1, 4, 16, "bilinear", 579_616)],
)
def test_tiny_unet_flops_are_the_hand_count(depth, width, size, upsample, by_hand):
    assert _unet_by_hand(depth, width, size, upsample) == by_hand
    cost = unet_cost(depth=depth, base_features=width, image_size=size, upsample=upsample)
    # XLA may compute a fused bias + ReLU twice (once per consumer): at most 1 % here, measured 0-0.7 %
    assert by_hand <= cost["flops"] <= 1.01 * by_hand


def test_default_unet_cost_is_the_readme_figure():
    cost = unet_cost()
    assert cost["params"] == 2_158_417
    assert f"{cost['flops'] / 1e9:.2f}" == "9.08"
    assert cost["flops"] == pytest.approx(_unet_by_hand(4, 16, 256), rel=1e-4)
    transpose = unet_cost(upsample="transpose")
    assert transpose["params"] == 1_940_817 and f"{transpose['flops'] / 1e9:.2f}" == "5.91"
    assert transpose["flops"] == pytest.approx(_unet_by_hand(4, 16, 256, "transpose"), rel=1e-4)


def test_cnn_forward_is_47_7_mflop_per_image():
    convs = {  # multiply-adds: output pixels × kernel taps × input channels × output channels
        "conv1": 24 * 24 * 5 * 5 * 3 * 64,
        "conv2": 20 * 20 * 5 * 5 * 64 * 32,
        "conv3": 8 * 8 * 3 * 3 * 32 * 32,
        "fc": 4 * 4 * 32 * 43,
    }
    assert f"{2 * sum(convs.values()) / 1e6:.1f}" == "47.7" and f"{2 * convs['conv2'] / 1e6:.0f}" == "41"
    biases, relus = 24 * 24 * 64 + 20 * 20 * 32 + 8 * 8 * 32 + 43, 24 * 24 * 64 + 20 * 20 * 32 + 8 * 8 * 32
    pools = 3 * (10 * 10 * 32 + 4 * 4 * 32)  # 3 comparisons per 2×2 window
    by_hand = 2 * sum(convs.values()) + biases + relus + pools
    assert _forward_flops(SignCNN(), (1, 28, 28, 3)) == pytest.approx(by_hand, rel=1e-4)

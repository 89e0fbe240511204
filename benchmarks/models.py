"""The networks the benchmarks time, one object each, in a registry keyed by the ``--model`` flag.

A config looks its network up once (`ModelFlag.bench`); from then on the benchmarks ask the object: how to
build the flax module from the flags, its task, input shape and defaults, random data of its label layout,
its PyTorch twin and loss, and its distinct convolutions. Nothing outside this module tells the networks
apart by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import numpy as np

from jaxadl.data.base import Split
from jaxadl.models.cnn import SignCNN
from jaxadl.models.unet import UNet
from jaxadl.tasks import Classification, Segmentation, Task


@dataclasses.dataclass(frozen=True)
class Conv:
    """One convolution shape of a network: input side, channels, kernel, padding, and how often it occurs."""

    name: str
    side: int
    cin: int
    cout: int
    k: int
    padding: str = "VALID"
    count: int = 1


# SignCNN on 28x28x3 inputs (VALID); conv1's input gradient is timed but never needed in training
CNN_LAYERS = (
    Conv("conv1 5x5 3->64 @28", 28, 3, 64, 5),
    Conv("conv2 5x5 64->32 @24", 24, 64, 32, 5),
    Conv("conv3 3x3 32->32 @12", 12, 32, 32, 3),
)


def unet_layers(depth: int = 4, width: int = 16, side: int = 256) -> tuple[Conv, ...]:
    """The distinct 3x3 SAME convolutions of UNet(depth, width) at side x side x 1, with their counts:
    per level the encoder's first conv, the two w -> w convs (the second of the encoder's and of the
    decoder's block), and the two 2w -> w convs (the conv after the 2x upsampling and the first of the
    decoder block); the bottom's two; the 1x1 head."""
    w = [width * 2**level for level in range(depth + 1)]
    out = []
    for level in range(depth):
        s, cin, wl = side // 2**level, 1 if level == 0 else w[level - 1], w[level]
        out.append(Conv(f"enc{level} 3x3 {cin}->{wl} @{s}", s, cin, wl, 3, "SAME"))
        out.append(Conv(f"L{level} 3x3 {wl}->{wl} @{s} (x2)", s, wl, wl, 3, "SAME", 2))
        out.append(Conv(f"dec{level} 3x3 {2 * wl}->{wl} @{s} (x2)", s, 2 * wl, wl, 3, "SAME", 2))
    s = side // 2**depth
    out.append(Conv(f"bottom 3x3 {w[depth - 1]}->{w[depth]} @{s}", s, w[depth - 1], w[depth], 3, "SAME"))
    out.append(Conv(f"bottom 3x3 {w[depth]}->{w[depth]} @{s}", s, w[depth], w[depth], 3, "SAME"))
    out.append(Conv(f"head 1x1 {width}->1 @{side}", side, width, 1, 1, "SAME"))
    return tuple(out)


class NetworkFlags(Protocol):
    """The flags a network is built from (benchmarks.step_config.StepTimeConfig has them all)."""

    batch_norm: bool
    flax_pool: bool
    image_size: int | None
    unet_width: int
    unet_depth: int
    upsample: str


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """One network the benchmarks time: its task, input channels and the defaults of its flags."""

    name: str
    task: Task
    channels: int  # of the input image
    batch_size: int  # the experiments' batch
    image_size: int  # side of the square input
    steps_per_window: int  # steps in one timed window of the step benchmark

    def network(self, flags: NetworkFlags) -> nn.Module:
        """The flax module for these flags."""
        raise NotImplementedError

    def check(self, flags: NetworkFlags) -> None:
        """ValueError when the flags do not fit the network (none by default)."""

    def input_shape(self, image_size: int) -> tuple[int, ...]:
        """One input image: (side, side, channels)."""
        return (image_size, image_size, self.channels)

    def random_split(self, n: int, image_size: int, seed: int) -> Split:
        """n random uint8 images with random labels in the task's layout."""
        rng = np.random.default_rng(seed)
        shape = self.input_shape(image_size)
        images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        return Split(images, self.random_labels(rng, n, shape))

    def random_labels(self, rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def torch_network(self, flags: NetworkFlags, variables: Any) -> Any:
        """The same network in PyTorch (benchmarks.torch_models), not yet holding `variables`."""
        raise NotImplementedError

    def torch_labels(self, labels: np.ndarray) -> np.ndarray:
        """The labels as PyTorch's loss takes them (host numpy)."""
        raise NotImplementedError

    def torch_loss(self) -> Callable[[Any, Any], Any]:
        """loss(logits, labels) in PyTorch, the task's training loss."""
        raise NotImplementedError

    def convolutions(self) -> tuple[Conv, ...]:
        """The network's distinct convolution shapes at its default size, with their counts."""
        raise NotImplementedError


class SignCNNBench(BenchModel):
    """The traffic-sign CNN: 43 classes, integer labels."""

    def network(self, flags: NetworkFlags) -> nn.Module:
        return SignCNN(batch_norm=flags.batch_norm, fast_pool=not flags.flax_pool)

    def random_labels(self, rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(0, 43, n).astype(np.int32)

    def torch_network(self, flags: NetworkFlags, variables: Any) -> Any:
        from benchmarks.torch_models import TorchSignCNN

        fc_in = int(variables["params"]["fc"]["kernel"].shape[0])
        return TorchSignCNN(flags.batch_norm, in_features=fc_in)

    def torch_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype(np.int64)

    def torch_loss(self) -> Callable[[Any, Any], Any]:
        import torch.nn.functional as F

        return F.cross_entropy

    def convolutions(self) -> tuple[Conv, ...]:
        return CNN_LAYERS


class UNetBench(BenchModel):
    """The lung U-Net: one grey channel in, binary masks out."""

    def network(self, flags: NetworkFlags) -> nn.Module:
        return UNet(
            depth=flags.unet_depth,
            base_features=flags.unet_width,
            upsample=flags.upsample,
            batch_norm=flags.batch_norm,
        )

    def check(self, flags: NetworkFlags) -> None:
        size = flags.image_size or self.image_size
        if size % 2**flags.unet_depth:
            raise ValueError(f"image_size {size} is not divisible by 2**{flags.unet_depth} (--unet-depth)")

    def random_labels(self, rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
        return (rng.random((n, *shape[:2], 1)) > 0.5).astype(np.uint8)

    def torch_network(self, flags: NetworkFlags, variables: Any) -> Any:
        from benchmarks.torch_models import TorchUNet

        return TorchUNet(flags.unet_depth, flags.unet_width, flags.upsample, "relu", flags.batch_norm)

    def torch_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.transpose(0, 3, 1, 2)  # NHWC masks -> NCHW

    def torch_loss(self) -> Callable[[Any, Any], Any]:
        import torch.nn.functional as F

        return lambda logits, masks: F.binary_cross_entropy_with_logits(logits, masks.float())

    def convolutions(self) -> tuple[Conv, ...]:
        return unet_layers(side=self.image_size)


MODELS: dict[str, BenchModel] = {
    m.name: m
    for m in (
        SignCNNBench("cnn", Classification(43), 3, batch_size=128, image_size=28, steps_per_window=10),
        UNetBench("unet", Segmentation(), 1, batch_size=4, image_size=256, steps_per_window=3),
    )
}


def per_model(field: str) -> str:
    """How --help shows a default that depends on the network: "128 (cnn), 4 (unet)"."""
    return ", ".join(f"{getattr(m, field)} ({m.name})" for m in MODELS.values())


class ModelFlag:
    """A benchmark config whose `model` field (a key of MODELS, the flag's choices) names the network."""

    model: str

    @property
    def bench(self) -> BenchModel:
        """The network the --model flag names: the one place a benchmark looks it up."""
        return MODELS[self.model]

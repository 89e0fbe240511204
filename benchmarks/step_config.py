"""What `python -m benchmarks.step_time` times: its config, one flag per field (experiments.cli)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from benchmarks.common import check_outputs, check_positive, check_torch
from benchmarks.models import MODELS, ModelFlag, per_model
from experiments.cli import opt, parse


@dataclasses.dataclass(frozen=True)
class StepTimeConfig(ModelFlag):
    """What to time; one flag per field (experiments.cli). Fields left None take the model's default."""

    model: str = opt("cnn", "the network to time", choices=tuple(MODELS))
    batch_norm: bool = opt(False, "BatchNorm after each conv")
    flax_pool: bool = opt(
        False, "cnn: nn.max_pool (select-and-scatter gradient) instead of the default reshape-and-max pool"
    )
    optimizer: str = opt("adam", "the optimizer of the step", choices=("adam", "sgd", "rprop"))
    lr: float = opt(1e-3, "learning rate")
    batch_size: int | None = opt(None, "examples per step", shown=per_model("batch_size"))
    image_size: int | None = opt(None, "side of the square input", shown=per_model("image_size"))
    unet_width: int = opt(16, "U-Net features of the first level")
    unet_depth: int = opt(4, "U-Net levels")
    upsample: str = opt("bilinear", "U-Net upsampling", choices=("bilinear", "nearest", "transpose"))
    warmup: int = opt(3, "untimed steps per side before the windows")
    windows: int = opt(5, "timed windows per side")
    steps_per_window: int | None = opt(None, "steps in one timed window", shown=per_model("steps_per_window"))
    compare: str = opt("none", "torch: time PyTorch side by side", choices=("none", "torch"))
    epoch: bool = opt(False, "also time an on-device epoch vs a host-fed loop")
    phases: bool = opt(
        False,
        "also time the forward pass (with loss) and forward + backward alone, to see where a step's time "
        "goes on each side",
    )
    epoch_steps: int = opt(30, "steps in the --epoch and --trials-together comparisons")
    trials_together: int = opt(
        0, "also time one epoch of N trials as one program against N epochs one by one (0: off)"
    )
    vectorize: bool = opt(False, "--trials-together: vmap the trials even on CPU (default: unrolled there)")
    seed: int = opt(0, "data and fast-init seed")
    fast_init: bool = opt(
        False, "draw the initial weights with numpy instead of compiling Flax's initialisers (slow on CPU)"
    )
    json: str | None = opt(None, "write the results to this file", shown="none")
    wait_idle: float = opt(
        120.0, "wait at most this many seconds for the 1-minute load to fall to half the cores"
    )

    def __post_init__(self) -> None:
        check_positive(
            self,
            "batch_size",
            "image_size",
            "windows",
            "steps_per_window",
            "epoch_steps",
            "unet_width",
            "unet_depth",
        )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_outputs(self)
        check_torch(self.compare)
        if self.trials_together < 0 or self.trials_together == 1:
            raise ValueError(f"trials_together must be 0 (off) or >= 2, got {self.trials_together}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        self.bench.check(self)

    def resolved(self) -> StepTimeConfig:
        """The config with the model's defaults filled in for the fields left None."""
        bench = self.bench
        return dataclasses.replace(
            self,
            batch_size=self.batch_size or bench.batch_size,
            image_size=self.image_size or bench.image_size,
            steps_per_window=self.steps_per_window or bench.steps_per_window,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input image of the resolved config."""
        return self.bench.input_shape(self.image_size)


def parse_args(argv: Sequence[str] | None) -> StepTimeConfig:
    """The command line as a resolved config; a bad flag or value exits with code 2 and names the flag."""
    description = "Time jaxadl's train step (and optionally PyTorch's) on random data."
    return parse(StepTimeConfig, argv, description, prog="python -m benchmarks.step_time").resolved()

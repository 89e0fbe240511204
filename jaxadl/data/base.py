"""The data contract every source produces: uint8 numpy arrays of fixed shape, one per split."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


class DatasetError(Exception):
    """Data that is missing, malformed or inconsistent; the message names the file or option.

    Command-line tools turn it into exit code 2 with the message, never a traceback.
    """


@dataclasses.dataclass(frozen=True)
class Split:
    """One split. images: uint8 [N, H, W, C]; labels: int32 [N] (classes) or uint8 [N, H, W, 1] (0/1 masks)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A prepared dataset: train, optional val and test splits, class count and provenance."""

    name: str
    train: Split
    val: Split | None
    test: Split | None
    num_classes: int
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def splits(self) -> dict[str, Split]:
        """The splits that exist, by name."""
        out = {"train": self.train, "val": self.val, "test": self.test}
        return {k: v for k, v in out.items() if v is not None}

"""A dataset as one .npz file of arrays: bring your own data, or move a prepared split to another machine.

Keys: train_images, train_labels, and optionally val_images/val_labels and test_images/test_labels
(images uint8 [N, H, W, C]; labels integer classes [N] or 0/1 masks [N, H, W, 1]), plus num_classes.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from jaxadl.data.base import Dataset, DatasetError, Split

SPLITS = ("train", "val", "test")


def save_npz(data: Dataset, path: str | os.PathLike) -> Path:
    """Write `data`'s splits to `path` (.npz); written to a temporary name first, then renamed."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"num_classes": np.asarray(data.num_classes)}
    for name, split in data.splits().items():
        arrays[f"{name}_images"], arrays[f"{name}_labels"] = split.images, split.labels
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_npz(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """The dataset stored in `path` by `save_npz` (or by hand with the same keys); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # EOFError: an empty file
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from e
    splits: dict[str, Split | None] = {}
    for split in SPLITS:
        keys = (f"{split}_images", f"{split}_labels")
        present = [k in arrays for k in keys]
        if not any(present):
            splits[split] = None
            continue
        if not all(present):
            missing = keys[present.index(False)]
            raise DatasetError(f"{path}: has {split} arrays but no {missing!r}")
        images, labels = arrays[keys[0]], arrays[keys[1]]
        if labels.ndim == 1:
            labels = labels.astype(np.int32)
        try:
            splits[split] = Split(images, labels)
        except ValueError as e:
            raise DatasetError(f"{path}: {split} split: {e}") from e
    if splits["train"] is None:
        raise DatasetError(f"{path}: no 'train_images'/'train_labels' arrays (keys: {sorted(arrays)})")
    train = splits["train"]
    if not len(train):
        raise DatasetError(f"{path}: the train split has no examples")
    if "num_classes" in arrays:
        num_classes = int(arrays["num_classes"])
    elif train.labels.ndim == 1:
        num_classes = int(max(int(s.labels.max()) for s in splits.values() if s is not None and len(s)) + 1)
    else:
        num_classes = 1
    for split, s in splits.items():  # labels out of range would train on silently
        if s is None or not len(s):
            continue
        low, high = int(s.labels.min()), int(s.labels.max())
        if s.labels.ndim == 1 and (low < 0 or high >= num_classes):
            raise DatasetError(
                f"{path}: {split}_labels run from {low} to {high}, outside the classes 0..{num_classes - 1}"
            )
        if s.labels.ndim > 1 and (low < 0 or high > 1):
            raise DatasetError(f"{path}: {split}_labels are masks from {low} to {high}; a mask holds 0 and 1")
    return Dataset(
        name or path.stem, train, splits["val"], splits["test"], num_classes, {"source": str(path)}
    )

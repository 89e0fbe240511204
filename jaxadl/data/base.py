"""The data contract every source produces: uint8 numpy arrays of fixed shape, one per split."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

DATA_DIR_ARG = "data_dir"  # the data folder's argument in every loader: errors about it carry it as `arg`


class DatasetError(Exception):
    """Data that is missing, malformed or inconsistent; the message names the file or option.

    An error about an argument's value gives its name as `arg` and writes "{arg}" where the message names
    it: str(e) reads the Python name, `e.naming(flag)` a command's own flag for the same value.
    Command-line tools turn it into exit code 2 with the message, never a traceback.
    """

    def __init__(self, message: str, arg: str | None = None) -> None:
        self.arg, self._message = arg, message
        super().__init__(self.naming(arg) if arg else message)

    def naming(self, name: str) -> str:
        """The message with the argument called `name` (a flag such as "--data-dir")."""
        return self._message.replace("{arg}", name) if self.arg else self._message


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


def hold_out_val(data: Dataset, fraction: float, seed: int) -> Dataset:
    """`data` with a validation split drawn from its training split when it has none (else unchanged).

    round(fraction * len(train)) examples (at least 1 when fraction > 0, never all) go to validation, by a
    permutation seeded with `seed`; meta["cases"], when present, is split the same way.
    """
    if data.val is not None or fraction <= 0:
        return data
    if not 0 < fraction < 1:
        raise DatasetError(f"val_fraction must be in [0, 1), got {fraction}")
    n = len(data.train)
    n_val = min(max(1, int(fraction * n + 0.5)), n - 1)
    if n_val < 1:
        raise DatasetError(f"{data.name}: {n} training example(s) cannot spare a validation split")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    pick = lambda idx: Split(data.train.images[idx], data.train.labels[idx])
    meta = dict(data.meta)
    cases = meta.get("cases")
    if isinstance(cases, dict) and len(cases.get("train") or []) == n:
        names = list(cases["train"])
        meta["cases"] = {
            **cases,
            "train": [names[i] for i in train_idx],
            "val": [names[i] for i in val_idx],
        }
    meta["val_from_train"] = {"fraction": fraction, "seed": seed}
    return dataclasses.replace(data, train=pick(train_idx), val=pick(val_idx), meta=meta)


def pooled(data: Dataset) -> tuple[Split, list[str] | None]:
    """`data`'s train and val cases as one split, with their names (meta["cases"]) when every case has one."""
    pool = [s for s in (data.train, data.val) if s is not None]
    split = Split(np.concatenate([s.images for s in pool]), np.concatenate([s.labels for s in pool]))
    cases = data.meta.get("cases")
    if isinstance(cases, dict):
        named = [list(cases.get(k) or []) for k in ("train", "val") if getattr(data, k) is not None]
        if [len(n) for n in named] == [len(s) for s in pool]:
            return split, [c for n in named for c in n]
    return split, None


def redraw_val(data: Dataset, fraction: float, seed: int) -> Dataset:
    """`data` with its validation cases back in training and `fraction` of the pool drawn again
    (hold_out_val): another split than the source's own; 0 trains on every case (a final fit)."""
    if data.val is None:
        return hold_out_val(data, fraction, seed)
    train, names = pooled(data)
    meta = {k: v for k, v in data.meta.items() if k != "cases"}
    if names:
        meta["cases"] = {k: v for k, v in data.meta["cases"].items() if k != "val"} | {"train": names}
    return hold_out_val(dataclasses.replace(data, train=train, val=None, meta=meta), fraction, seed)


def check_cv(folds: int, fold: int, names: tuple[str, str] = ("cv_folds", "cv_fold")) -> None:
    """Cross-validation options: `folds` 0 (off) or >= 2, `fold` in 0..folds-1; errors name them as `names`."""
    n, k = names
    if folds == 1 or folds < 0:
        raise ValueError(f"{n} must be 0 (off) or >= 2, got {folds}")
    if folds and not 0 <= fold < folds:
        raise ValueError(f"{k} must be in 0..{folds - 1} with {n}={folds}, got {fold}")
    if not folds and fold:
        raise ValueError(f"{k}={fold} needs {n}=N (cross-validation is off)")


def cross_val_fold(data: Dataset, folds: int, fold: int, seed: int) -> Dataset:
    """`data` with its train and val cases pooled and cut into `folds` disjoint parts: part `fold` validates.

    The pool is ordered by case name (meta["cases"]) when the cases are named, so the folds do not depend on
    how the source split train from val; it is permuted with `seed` and cut into near-equal parts, so folds
    0..folds-1 validate every case once. The test split is untouched.
    """
    whole, names = pooled(data)
    images, labels = whole.images, whole.labels
    if not 2 <= folds <= len(images):
        raise DatasetError(
            f"{data.name}: {len(images)} train + val cases cannot make {folds} folds (need 2..{len(images)})"
        )
    if not 0 <= fold < folds:
        raise DatasetError(f"cross-validation fold must be in 0..{folds - 1}, got {fold}")
    order = np.argsort(names, kind="stable") if names else np.arange(len(images))
    parts = np.array_split(np.random.default_rng(seed).permutation(len(order)), folds)  # positions in order
    val_idx = order[np.sort(parts[fold])]  # each split in name order
    train_idx = order[np.sort(np.concatenate([p for i, p in enumerate(parts) if i != fold]))]
    pick = lambda idx: Split(images[idx], labels[idx])
    meta = {k: v for k, v in data.meta.items() if k != "val_from_train"}
    if names:
        meta["cases"] = {
            **data.meta["cases"],
            "train": [names[i] for i in train_idx],
            "val": [names[i] for i in val_idx],
        }
    meta["cross_validation"] = {"folds": folds, "fold": fold, "seed": seed}
    return dataclasses.replace(data, train=pick(train_idx), val=pick(val_idx), meta=meta)

"""Loading GTSRB: source -> prepared cache -> arrays, with validation tracks split off on every load."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from jaxadl.data.base import Dataset, DatasetError, Split, check_cv
from jaxadl.data.cache import default_cache_dir, load_arrays, prepare
from jaxadl.data.gtsrb.builder import JaxadlGtsrb, gtsrb_config
from jaxadl.data.gtsrb.fetch import resolve_source
from jaxadl.data.gtsrb.sources import CROPS, NUM_CLASSES, log
from jaxadl.data.signs import CLASS_NAMES


def track_split(labels: np.ndarray, tracks: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: whole (class, track) groups, ~val_fraction of each class's tracks.

    Frames of one track show the same physical sign, so splitting by image would leak it into validation.
    Each class with at least two tracks keeps one or more in train and gives at least one to val.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    if val_fraction <= 0:
        return mask
    for c in range(NUM_CLASSES):
        in_c = labels == c
        uniq = np.unique(tracks[in_c])
        if len(uniq) < 2:
            continue
        k = min(max(1, int(round(val_fraction * len(uniq)))), len(uniq) - 1)
        chosen = rng.choice(uniq, size=k, replace=False)
        mask |= in_c & np.isin(tracks, chosen)
    return mask


def track_folds(labels: np.ndarray, tracks: np.ndarray, folds: int, fold: int, seed: int) -> np.ndarray:
    """Boolean mask of the rows that cross-validation fold `fold` of `folds` validates: whole tracks.

    Within each class (in label order) the sorted tracks are permuted with `seed` and dealt one by one into
    the folds, the deal going on from class to class, so folds differ by at most one track, overall and per
    class, and folds 0..folds-1 validate every track once. A track never straddles train and val, and a
    class with two or more tracks keeps at least one in train; a class with fewer tracks than folds is
    missing from some folds' validation, and a class with a single track always trains (never validates).
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold!r}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    dealt = 0
    for c in np.unique(labels):
        in_c = labels == c
        uniq = np.unique(tracks[in_c])
        if len(uniq) < 2:
            continue
        order = rng.permutation(uniq)
        chosen = order[(dealt + np.arange(len(order))) % folds == fold]
        dealt += len(order)
        mask |= in_c & np.isin(tracks, chosen)
    if dealt < folds:
        raise DatasetError(
            f"{folds} cross-validation folds need {folds} or more tracks in classes with two or more tracks; "
            f"there are {dealt}"
        )
    return mask


def _check_options(image_size: Any, crop: str, val_fraction: float, cv: tuple[int, int]) -> int:
    """The image size as an int; ValueError for a bad size, crop mode, validation fraction or fold."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    check_cv(*cv)
    return int(image_size)


def _splits(
    arrays: dict[str, dict[str, np.ndarray]], val_fraction: float, seed: int, cv: tuple[int, int]
) -> tuple[dict[str, Split | None], dict[str, int]]:
    """Train, val (whole tracks of the training arrays: ~val_fraction of them, or fold cv[1] of cv[0] when
    cv[0] > 0) and test splits, and the tracks in train and val."""
    train_all = arrays["train"]
    labels, tracks = train_all["label"].astype(np.int32), train_all["track"]
    test = arrays.get("test")
    if cv[0]:
        val_mask = track_folds(labels, tracks, cv[0], cv[1], seed)
    else:
        val_mask = track_split(labels, tracks, val_fraction, seed)
    has_val = cv[0] > 0 or val_fraction > 0
    splits = {
        "train": Split(train_all["image"][~val_mask], labels[~val_mask]),
        "val": Split(train_all["image"][val_mask], labels[val_mask]) if has_val else None,
        "test": Split(test["image"], test["label"].astype(np.int32)) if test is not None else None,
    }
    groups = labels.astype(np.int64) * 1_000_000 + tracks
    track_counts = {
        "train": int(len(np.unique(groups[~val_mask]))),
        "val": int(len(np.unique(groups[val_mask]))),
    }
    return splits, track_counts


def _meta(builder: JaxadlGtsrb, splits: dict[str, Split | None], **load: Any) -> dict[str, Any]:
    """Provenance of a load: source and layout, cache entry and timings, counts, tracks, options."""
    stored, cfg = dict(builder.info.metadata), builder.builder_config
    cv_folds, cv_fold = load["cv"]
    cv = {"cross_validation": {"folds": cv_folds, "fold": cv_fold, "seed": load["seed"]}} if cv_folds else {}
    return {
        "source": stored.get("source", load["source"]),
        "source_layout": stored.get("source_layout"),
        "source_key": load["source_key"],
        "cache_path": str(builder.data_path),
        "config": cfg.variant,
        "image_size": cfg.image_size,
        "crop": cfg.options["crop"],
        "prepared_now": load["prepared_now"],
        "prepare_seconds": stored.get("prepare_seconds"),
        "load_seconds": load["load_seconds"],
        "read_from": load["read_from"],
        "class_names": list(CLASS_NAMES),
        "counts": {k: len(v) for k, v in splits.items() if v is not None},
        "tracks": load["tracks"],
        "track_source": stored.get("track_source"),
        "val_fraction": None if cv_folds else load["val_fraction"],
        "seed": load["seed"],
        **cv,
        "notes": list(stored.get("notes", [])),
    }


def load_gtsrb(
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 28,
    crop: str = "roi",
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    cv_folds: int = 0,
    cv_fold: int = 0,
) -> Dataset:
    """GTSRB as uint8 [N, image_size, image_size, 3] images and int32 labels, prepared once into a cache.

    Sources, in order: ``data_dir``, ``$JAXADL_GTSRB_DIR``, then the official archives downloaded into
    ``cache_dir/downloads/gtsrb`` (only if ``download``). A directory may hold the official zips, their
    extracted ``GTSRB/`` trees, or the ``Train/``/``Test/`` + ``Train.csv``/``Test.csv`` re-packaging;
    without a test set, ``test`` is None.

    ``crop="roi"`` (default) cuts each image to its annotated sign box, scaled to the actual image size
    (copies are often re-encoded smaller than the CSV's Width/Height), so the sign fills the frame as the
    report's 28×28 CNN expects; ``crop="none"`` keeps the whole image with its margin.
    ``val_fraction`` of each class's tracks (30 frames of one physical sign) go to ``val``, chosen with
    ``seed``, so no sign appears in both; ``val`` is None when it is 0.
    ``cv_folds=N`` (0: off) instead deals each class's tracks into N folds with ``seed`` and validates on
    fold ``cv_fold`` (see :func:`track_folds`; ``val_fraction`` is then not used, meta["cross_validation"]
    records the fold); folds 0..N-1 validate every track once. The test split is never touched.

    The cache (``cache_dir``, else ``$JAXADL_DATA_DIR``, else ``~/.cache/jaxadl``; see
    :mod:`jaxadl.data.cache`) is keyed by the source's resolved path, each source file's path, size and
    modification time (an edit re-prepares), and by image size and crop. A plain .npz copy of the
    arrays beside it makes later loads take well under a second.
    Raises DatasetError naming the file for missing or malformed data, ValueError for bad arguments.
    """
    image_size = _check_options(image_size, crop, val_fraction, (cv_folds, cv_fold))
    cache = default_cache_dir(cache_dir)
    files = resolve_source(data_dir, cache, download)
    try:
        source_key = files.key()
        config = gtsrb_config(files, image_size, crop)
        builder, prepared_now = prepare(
            JaxadlGtsrb, config, source=files, cache_dir=cache, log=log if progress else None
        )
    finally:
        files.close()
    t0 = time.perf_counter()
    arrays, read_from = load_arrays(builder)
    load_seconds = round(time.perf_counter() - t0, 3)
    splits, tracks = _splits(arrays, val_fraction, seed, (cv_folds, cv_fold))
    meta = _meta(
        builder,
        splits,
        source=str(files.root),
        source_key=source_key,
        prepared_now=prepared_now,
        load_seconds=load_seconds,
        read_from=read_from,
        tracks=tracks,
        val_fraction=val_fraction,
        seed=seed,
        cv=(cv_folds, cv_fold),
    )
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert train is not None
    return Dataset(name="gtsrb", train=train, val=val, test=test, num_classes=NUM_CLASSES, meta=meta)

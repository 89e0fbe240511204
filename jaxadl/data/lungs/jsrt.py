"""JSRT chest radiographs with SCR lung masks, split as in the report (112 train / 12 val / 123 test).

Images are headerless 12-bit big-endian raw files (``*.IMG``, 2048²); masks are GIFs in folders named
``left lung`` and ``right lung``, joined into one lung field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxadl.data.base import DATA_DIR_ARG, Dataset, DatasetError
from jaxadl.data.cache import CacheConfig, fingerprint
from jaxadl.data.lungs.images import check_size, open_mask_values, resize_gray, resize_mask
from jaxadl.data.lungs.prepare import Cases, JaxadlJsrt, prepare_cases

JSRT_ENV = "JAXADL_JSRT_DIR"
JSRT_BITS = 12  # JSRT stores 12-bit values in big-endian uint16 samples


def jsrt_split(cases: Sequence[str]) -> dict[str, list[str]]:
    """Report split of sorted case names: odd positions (1st, 3rd, ...) -> train fold, even -> test.

    The last ~10% (at least 1, at most all but one) of the train fold become validation.
    """
    cases = sorted(cases)
    fold = cases[0::2]
    n_val = min(max(1, int(0.1 * len(fold) + 0.5)), len(fold) - 1)
    return {"train": fold[: len(fold) - n_val], "val": fold[len(fold) - n_val :], "test": cases[1::2]}


def _read_jsrt_raw(path: Path) -> np.ndarray:
    """Headerless big-endian uint16 square image (2048² in JSRT; side inferred from the file size)."""
    nbytes = path.stat().st_size
    side = math.isqrt(nbytes // 2)
    if nbytes % 2 or side * side * 2 != nbytes or side == 0:
        raise DatasetError(f"{path}: {nbytes} bytes is not a square big-endian uint16 image")
    try:
        raw = np.fromfile(path, dtype=">u2")
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e
    return raw.reshape(side, side)


def jsrt_intensity(raw: np.ndarray) -> np.ndarray:
    """JSRT 12-bit raw values to float in (0,1] as ``1 - raw/4096`` (raw 0 -> 1, raw 4095 -> ~0)."""
    return 1.0 - np.minimum(raw, 2**JSRT_BITS - 1).astype(np.float32) / float(2**JSRT_BITS)


def _read_binary_gif(path: Path) -> np.ndarray:
    """An SCR mask GIF as booleans (values above 127, or above 0 for a 0/1 palette)."""
    values = open_mask_values(path)
    return values > 127 if values.max(initial=0) > 1 else values > 0


def _find_jsrt_files(root: Path) -> tuple[dict[str, Path], dict[str, dict[str, Path]]]:
    """Every *.IMG under root by case name, and every GIF mask by side ("left lung", "right lung") and case."""
    images: dict[str, Path] = {}
    masks: dict[str, dict[str, Path]] = {"left lung": {}, "right lung": {}}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix.lower() == ".img":
            images.setdefault(p.stem.upper(), p)
        elif p.suffix.lower() == ".gif":
            folders = [part.lower() for part in p.relative_to(root).parts[:-1]]
            side = next((s for s in masks if s in folders), None)
            if side is not None:
                masks[side].setdefault(p.stem.upper(), p)
    return images, masks


def _jsrt_example(image: Path, left: Path, right: Path, size: int, index: int) -> dict[str, np.ndarray]:
    """One case at size×size: the radiograph and the union of its two lung masks."""
    pixels = resize_gray(jsrt_intensity(_read_jsrt_raw(image)), size)
    lm, rm = _read_binary_gif(left), _read_binary_gif(right)
    if lm.shape == rm.shape:
        mask = resize_mask(lm | rm, size)
    else:
        mask = resize_mask(lm, size) | resize_mask(rm, size)
    return {"image": pixels[..., None], "mask": mask[..., None], "index": np.int32(index)}


def _jsrt_root(data_dir: str | os.PathLike | None) -> Path:
    """The JSRT folder: `data_dir`, else ``$JAXADL_JSRT_DIR``; DatasetError when neither names a folder."""
    if data_dir is None:
        data_dir = os.environ.get(JSRT_ENV)
        if not data_dir:
            raise DatasetError(
                "no JSRT directory: put the JSRT .IMG files and the SCR masks ('left lung' / 'right lung' GIF "
                f"folders) in one folder and pass it with {{arg}} or set ${JSRT_ENV}; --dataset=synthetic runs "
                "offline",
                arg=DATA_DIR_ARG,
            )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        problem = "is a file" if root.exists() else "does not exist"
        raise DatasetError(f"{{arg}} {root} {problem} (the JSRT directory)", arg=DATA_DIR_ARG)
    return root


def _check_pairs(root: Path, images: dict[str, Path], masks: dict[str, dict[str, Path]]) -> None:
    """DatasetError naming the file when an image lacks a mask or a mask lacks its image."""
    if not images:
        raise DatasetError(f"no .IMG files found under {root}")
    for side, found in masks.items():
        if not found:
            raise DatasetError(f"no GIF masks in a '{side}' folder under {root}")
        for stem, path in found.items():
            if stem not in images:
                raise DatasetError(f"mask {path} has no matching image {stem}.IMG under {root}")
    for stem, path in images.items():
        for side, found in masks.items():
            if stem not in found:
                raise DatasetError(f"image {path} has no '{side}' mask {stem}.gif under {root}")


def load_jsrt(
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """JSRT radiographs with SCR lung masks, split as in the report (112 train / 12 val / 123 test).

    ``data_dir`` (or ``$JAXADL_JSRT_DIR``) is searched recursively for ``*.IMG`` files and GIF masks in
    folders named ``left lung`` and ``right lung`` (union = lung field). Images are read as
    ``1 - raw/4096`` and bilinearly resized to ``image_size``; masks are area-resized and thresholded.
    The 247 cases sorted by name (JPCLN001-154, then JPCNN001-093) alternate between two folds:
    the 1st, 3rd, ... case form the train fold (JPCLN001, 003, ..., 153 and JPCNN001, 003, ..., 093:
    124 cases), of which the last 12 (JPCNN071, 073, ..., 093) are validation, leaving 112 for training
    (JPCLN odd 001-153, JPCNN odd 001-069); the even cases (JPCLN002-154, JPCNN002-092: 123) are test.
    Smaller sets follow the same rule with ~10% (at least one) of the train fold as validation.
    """
    check_size(image_size)
    root = _jsrt_root(data_dir)
    images, masks = _find_jsrt_files(root)
    _check_pairs(root, images, masks)
    files = [*images.values(), *masks["left lung"].values(), *masks["right lung"].values()]
    key = fingerprint(root, files, "jsrt", image_size)

    def example(split: str, stem: str, index: int) -> dict[str, np.ndarray]:
        left, right = masks["left lung"][stem], masks["right lung"][stem]
        return _jsrt_example(images[stem], left, right, image_size, index)

    return prepare_cases(
        "jsrt",
        JaxadlJsrt,
        CacheConfig(variant=f"s{image_size}", key=key, image_size=image_size),
        root=root,
        cases=Cases(jsrt_split(list(images)), example),
        cache_dir=cache_dir,
        progress=progress,
        intensity="1 - raw/4096, scaled to 0..255",
    )

"""Lung images with binary masks from a folder: a fixed train/val/test layout or one flat images/masks pair."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxadl.data.base import Dataset, DatasetError
from jaxadl.data.cache import CacheConfig, fingerprint
from jaxadl.data.lungs.images import check_size, open_gray, open_mask_values, resize_gray, resize_mask
from jaxadl.data.lungs.prepare import Cases, JaxadlLungFolder, prepare_cases

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")
_SPLITS = ("train", "val", "test")
Pairs = tuple[dict[str, Path], dict[str, Path]]


def _list_images(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem (hidden files skipped); DatasetError for a missing folder or a stem twice."""
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            if p.stem in out:
                raise DatasetError(f"two files with the stem {p.stem!r}: {out[p.stem]} and {p}")
            out[p.stem] = p
    return out


def _read_folder_mask(path: Path) -> np.ndarray:
    """A mask file as booleans; DatasetError unless its values are {0,1} or {0,255}."""
    values = open_mask_values(path)
    found = np.unique(values)
    if set(found.tolist()) <= {0, 1}:
        return values.astype(bool)
    if set(found.tolist()) <= {0, 255}:
        return values == 255
    shown = ", ".join(str(v) for v in found[:8]) + (", ..." if len(found) > 8 else "")
    raise DatasetError(f"mask {path} is not binary: values {shown} (expected {{0,1}} or {{0,255}})")


def folder_split(
    stems: Sequence[str], *, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Seeded permutation of sorted stems: ``test_fraction`` of all cases to test, then ``val_fraction``
    of the rest to val (each at least one fewer than what remains, so train is never empty)."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DatasetError(f"{name} must be in [0, 1), got {value}")
    stems = sorted(stems)
    n = len(stems)
    n_test = min(int(test_fraction * n + 0.5), n - 1)
    n_val = min(int(val_fraction * (n - n_test) + 0.5), n - n_test - 1)
    perm = np.random.default_rng(seed).permutation(n)
    pick = lambda idx: sorted(stems[i] for i in idx)
    return {
        "train": pick(perm[n_test + n_val :]),
        "val": pick(perm[n_test : n_test + n_val]),
        "test": pick(perm[:n_test]),
    }


def _pairs(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Images and masks of matching stems in root/images and root/masks; errors name what does not match."""
    images, masks = _list_images(root / "images"), _list_images(root / "masks")
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root / 'images'}")
    only_img = sorted(set(images) - set(masks))
    only_mask = sorted(set(masks) - set(images))
    if only_img or only_mask:
        parts = []
        if only_img:
            parts.append(f"images without mask: {', '.join(images[s].name for s in only_img[:5])}")
        if only_mask:
            parts.append(f"masks without image: {', '.join(masks[s].name for s in only_mask[:5])}")
        raise DatasetError(f"{root}: file names do not match ({'; '.join(parts)})")
    return images, masks


def _folder_example(image: Path, mask: Path, size: int, index: int) -> dict[str, np.ndarray]:
    """One case: the image and its mask at size×size; a mask of another aspect ratio is an error."""
    gray = open_gray(image)
    truth = _read_folder_mask(mask)
    (h, w), (mh, mw) = gray.shape, truth.shape
    if abs(w / h - mw / mh) > 0.01 * (w / h):
        raise DatasetError(
            f"mask {mask} is {mw}x{mh} but its image {image.name} is {w}x{h}: the aspect ratios differ "
            "(a mask may be smaller or larger than its image, but must cover the same frame)"
        )
    pixels = resize_gray(gray, size)
    return {
        "image": pixels[..., None],
        "mask": resize_mask(truth, size)[..., None],
        "index": np.int32(index),
    }


def _fixed_layout(
    root: Path, val_fraction: float, seed: int
) -> tuple[dict[str, Pairs], dict[str, list[str]], list[Path], tuple]:
    """train/, val/, test/ folders: their pairs, cases per split (val drawn from train without val/),
    source files and the options of the cache key."""
    found = {s: _pairs(root / s) for s in _SPLITS if (root / s).is_dir()}
    stray = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in ("images", "masks"))
    if stray:
        raise DatasetError(
            f"{root} has both train/ and {'/, '.join(stray)}/: use either the fixed-split layout "
            "(train/, test/, val/, each with images/ and masks/) or the flat one (images/, masks/)"
        )
    if "val" in found:
        split_cases = {s: sorted(found[s][0]) for s in found}
    else:
        drawn = folder_split(list(found["train"][0]), val_fraction=val_fraction, test_fraction=0.0, seed=seed)
        split_cases = {"train": drawn["train"], "val": drawn["val"]}
        if "test" in found:
            split_cases["test"] = sorted(found["test"][0])
    files = [f for images, masks in found.values() for f in (*images.values(), *masks.values())]
    options = ("fixed", val_fraction if "val" not in found else None, seed)
    return found, split_cases, files, options


def _flat_layout(
    root: Path, val_fraction: float, test_fraction: float, seed: int
) -> tuple[dict[str, Pairs], dict[str, list[str]], list[Path], tuple]:
    """images/ and masks/ only: the pairs, the seeded split, source files and the options of the cache key."""
    images, masks = _pairs(root)
    found = {s: (images, masks) for s in _SPLITS}
    split_cases = folder_split(
        list(images), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    files = [*images.values(), *masks.values()]
    return found, split_cases, files, ("folder", val_fraction, test_fraction, seed)


def load_lung_folder(
    path: str | os.PathLike,
    *,
    image_size: int = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.5,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """Lung images with binary masks of the same file stem, in one of two layouts:

    - fixed split: ``path/train/{images,masks}``, optional ``path/test/{images,masks}`` and
      ``path/val/{images,masks}``, used as given; without ``val/``, ``val_fraction`` of the training
      cases (a permutation seeded with ``seed``) validate. ``test_fraction`` is not used.
    - flat: ``path/images`` and ``path/masks``; ``test_fraction`` of all cases go to test and
      ``val_fraction`` of the rest to validation, by a permutation seeded with ``seed``.

    Images are converted to grayscale (16-bit ones divided by 65535, the depth their file states) and
    bilinearly resized to ``image_size`` (aspect not kept); masks
    ({0,1} or {0,255}, any size with the image's aspect ratio) are area-resized and thresholded.
    """
    check_size(image_size)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"lung folder {root} {'is a file' if root.exists() else 'does not exist'}")
    fixed = (root / "train").is_dir()
    split_dirs = [s for s in ("test", "val") if (root / s).is_dir()]
    if not fixed and split_dirs and not (root / "images").is_dir():  # the fixed-split layout, without train/
        raise DatasetError(
            f"missing folder {root / 'train'}: {root} has {' and '.join(s + '/' for s in split_dirs)}, so it is "
            "read as the fixed-split layout, which needs train/images and train/masks "
            f"(or use the flat layout: {root / 'images'} and {root / 'masks'})"
        )
    if fixed:
        found, split_cases, files, options = _fixed_layout(root, val_fraction, seed)
    else:
        found, split_cases, files, options = _flat_layout(root, val_fraction, test_fraction, seed)
    key = fingerprint(root, files, options[0], image_size, *options[1:])

    def example(split: str, stem: str, index: int) -> dict[str, np.ndarray]:
        images, masks = found.get(split, found["train"])  # drawn validation cases live in train/
        return _folder_example(images[stem], masks[stem], image_size, index)

    return prepare_cases(
        "lung-folder",
        JaxadlLungFolder,
        CacheConfig(variant=f"s{image_size}", key=key, image_size=image_size),
        root=root,
        cases=Cases(split_cases, example),
        cache_dir=cache_dir,
        progress=progress,
        layout="fixed split" if fixed else "flat",
        seed=seed,
        val_fraction=val_fraction if not fixed or "val" not in found else None,
        test_fraction=None if fixed else test_fraction,
    )

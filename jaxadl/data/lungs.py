"""Lung segmentation data (report section 2): JSRT + SCR masks, a generic image/mask folder, or synthetic.

Every loader returns a :class:`~jaxadl.data.base.Dataset` with uint8 images [N,S,S,1] and uint8
masks [N,S,S,1] in {0,1} (``num_classes=1``). The file-based loaders prepare the data once through a
TF-free tensorflow-datasets builder (``tfds.features.Tensor`` features, ``array_record`` files, read
back with ``as_data_source()``) cached under ``cache_dir`` (default ``$JAXADL_DATA_DIR`` or
``~/.cache/jaxadl``). The cache key (builder config name) holds the image size and a hash of the
resolved source path, the split options and the file listing (names, sizes, mtimes), so a different
source, size or split never reuses another's cache. TFDS writes into an ``incomplete.*`` folder and
renames it only when done, so a preparation that fails mid-way leaves nothing a later call takes
as finished.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxadl.data.base import Dataset, DatasetError, Split
from jaxadl.data.tfds_util import LocalBuilder, LocalInfo, default_cache_dir, fingerprint, quiet_tfds

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")
JSRT_ENV = "JAXADL_JSRT_DIR"
_SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------------
# Cache key and the TFDS builder (jaxadl.data.tfds_util holds what GTSRB shares)


Example = tuple[str, dict[str, np.ndarray]]


def _make_builder_class(name: str) -> type:
    """A GeneratorBasedBuilder writing (image, mask, index) examples per split; not registered in TFDS."""

    class _Builder(LocalBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, *, image_size: int, splits: Callable[[], dict[str, Iterator[Example]]], **kwargs):
            self._image_size = image_size
            self._split_fn = splits
            super().__init__(**kwargs)

        def _info(self) -> Any:
            shape = (self._image_size, self._image_size, 1)
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
                    "mask": tfds.features.Tensor(shape=shape, dtype=np.uint8),
                    "index": tfds.features.Tensor(shape=(), dtype=np.int32),
                }
            )
            return LocalInfo(builder=self, features=features, description=f"jaxadl {name}")

        def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[Example]]:
            return self._split_fn()

        def _generate_examples(self, examples: Iterator[Example]) -> Iterator[Example]:
            yield from examples

    _Builder.name = name
    _Builder.__name__ = _Builder.__qualname__ = "".join(p.title() for p in name.split("_"))
    return _Builder


_BUILDERS: dict[str, type] = {}


def prepare_with_tfds(
    name: str,
    builder_name: str,
    config_name: str,
    *,
    root: Path,
    image_size: int,
    cases: dict[str, list[str]],
    example: Callable[[str, int], dict[str, np.ndarray]],
    cache_dir: str | os.PathLike | None,
    progress: bool,
    **meta: Any,
) -> Dataset:
    """Build (once) and read back a cached TFDS dataset of `cases` per split, each made by `example`.

    `example(split, stem, index)` (index = position in its split) is only called when nothing is cached yet;
    `meta` joins the source, size, cache folder and cases in the Dataset's meta.
    """

    def splits() -> dict[str, Iterator[Example]]:
        def gen(split: str, stems: list[str]) -> Iterator[Example]:
            for i, stem in enumerate(stems):
                yield f"{split}/{stem}", example(split, stem, i)

        return {k: gen(k, v) for k, v in cases.items() if v}

    if builder_name not in _BUILDERS:
        _BUILDERS[builder_name] = _make_builder_class(builder_name)
    builder = _BUILDERS[builder_name](
        image_size=image_size,
        splits=splits,
        config=tfds.core.BuilderConfig(name=config_name),
        data_dir=str(default_cache_dir(cache_dir)),
        file_format="array_record",
    )
    with quiet_tfds(not progress):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    out: dict[str, Split] = {}
    for split, source in builder.as_data_source().items():
        rows = source.__getitems__(list(range(len(source))))
        order = np.argsort([int(r["index"]) for r in rows])
        images = np.stack([np.asarray(rows[i]["image"], np.uint8) for i in order])
        masks = np.stack([np.asarray(rows[i]["mask"], np.uint8) for i in order])
        out[str(split)] = Split(images, masks)
    meta = {
        "source": str(root.resolve()),
        "image_size": image_size,
        "cache": str(builder.data_dir),
        "cases": {k: list(v) for k, v in cases.items()},
        **meta,
    }
    return _dataset(name, out, meta)


# --------------------------------------------------------------------------------------------------
# Image helpers


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size <= 0:
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")


def _resize_gray(values: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (antialiased) resize of a float image in [0,1] to size×size uint8 0..255."""
    img = Image.fromarray(np.ascontiguousarray(values, np.float32))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a boolean mask and threshold at 0.5 so it stays binary; returns uint8 {0,1}."""
    if mask.shape == (size, size):
        return mask.astype(np.uint8)
    img = Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX)
    return (np.asarray(img) >= 0.5).astype(np.uint8)


def _open_gray(path: Path) -> np.ndarray:
    """Read any PIL-readable image as a 2-D float array in [0,1] (RGB -> L, 16-bit scaled)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(img, np.float32)
                top = 255.0 if arr.max() <= 255 else 4095.0 if arr.max() <= 4095 else 65535.0
                return np.clip(arr / top, 0.0, 1.0)
            return np.asarray(img.convert("L"), np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e


def _open_mask_values(path: Path) -> np.ndarray:
    """Read a mask file as 2-D uint8 values after conversion to L."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e


def _splits_from_arrays(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Split]:
    return {k: Split(x, y) for k, (x, y) in arrays.items() if len(x)}


def _dataset(name: str, splits: dict[str, Split], meta: dict[str, Any]) -> Dataset:
    if "train" not in splits:
        raise DatasetError(f"{name}: the training split is empty")
    return Dataset(name, splits["train"], splits.get("val"), splits.get("test"), num_classes=1, meta=meta)


# --------------------------------------------------------------------------------------------------
# JSRT + SCR


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
    return 1.0 - np.minimum(raw, 4095).astype(np.float32) / 4096.0


def _read_binary_gif(path: Path) -> np.ndarray:
    values = _open_mask_values(path)
    return values > 127 if values.max(initial=0) > 1 else values > 0


def _find_jsrt_files(root: Path) -> tuple[dict[str, Path], dict[str, dict[str, Path]]]:
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
    pixels = _resize_gray(jsrt_intensity(_read_jsrt_raw(image)), size)
    lm, rm = _read_binary_gif(left), _read_binary_gif(right)
    if lm.shape == rm.shape:
        mask = _resize_mask(lm | rm, size)
    else:
        mask = _resize_mask(lm, size) | _resize_mask(rm, size)
    return {"image": pixels[..., None], "mask": mask[..., None], "index": np.int32(index)}


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
    _check_size(image_size)
    if data_dir is None:
        data_dir = os.environ.get(JSRT_ENV)
        if not data_dir:
            raise DatasetError(f"no JSRT directory: pass data_dir or set ${JSRT_ENV}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"JSRT directory {root} does not exist")
    images, masks = _find_jsrt_files(root)
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

    split_cases = jsrt_split(list(images))
    files = [*images.values(), *masks["left lung"].values(), *masks["right lung"].values()]
    config = f"s{image_size}_{fingerprint(root, files, 'jsrt', image_size)}"

    def example(split: str, stem: str, index: int) -> dict[str, np.ndarray]:
        left, right = masks["left lung"][stem], masks["right lung"][stem]
        return _jsrt_example(images[stem], left, right, image_size, index)

    return prepare_with_tfds(
        "jsrt",
        "jaxadl_jsrt",
        config,
        root=root,
        image_size=image_size,
        cases=split_cases,
        example=example,
        cache_dir=cache_dir,
        progress=progress,
        intensity="1 - raw/4096, scaled to 0..255",
    )


# --------------------------------------------------------------------------------------------------
# Generic folder: path/images/* and path/masks/* with matching stems


def _list_images(folder: Path) -> dict[str, Path]:
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
    values = _open_mask_values(path)
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
    gray = _open_gray(image)
    truth = _read_folder_mask(mask)
    (h, w), (mh, mw) = gray.shape, truth.shape
    if abs(w / h - mw / mh) > 0.01 * (w / h):
        raise DatasetError(
            f"mask {mask} is {mw}x{mh} but its image {image.name} is {w}x{h}: the aspect ratios differ "
            "(a mask may be smaller or larger than its image, but must cover the same frame)"
        )
    pixels = _resize_gray(gray, size)
    return {
        "image": pixels[..., None],
        "mask": _resize_mask(truth, size)[..., None],
        "index": np.int32(index),
    }


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

    Images are converted to grayscale and bilinearly resized to ``image_size`` (aspect not kept); masks
    ({0,1} or {0,255}, any size with the image's aspect ratio) are area-resized and thresholded.
    """
    _check_size(image_size)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"lung folder {root} does not exist")
    fixed = (root / "train").is_dir()
    if fixed:
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
            drawn = folder_split(
                list(found["train"][0]), val_fraction=val_fraction, test_fraction=0.0, seed=seed
            )
            split_cases = {"train": drawn["train"], "val": drawn["val"]}
            if "test" in found:
                split_cases["test"] = sorted(found["test"][0])
        files = [f for images, masks in found.values() for f in (*images.values(), *masks.values())]
        options = ("fixed", image_size, val_fraction if "val" not in found else None, seed)
    else:
        images, masks = _pairs(root)
        found = {s: (images, masks) for s in _SPLITS}
        split_cases = folder_split(
            list(images), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
        )
        files = [*images.values(), *masks.values()]
        options = ("folder", image_size, val_fraction, test_fraction, seed)
    config = f"s{image_size}_{fingerprint(root, files, *options)}"

    def example(split: str, stem: str, index: int) -> dict[str, np.ndarray]:
        images, masks = found.get(split, found["train"])  # drawn validation cases live in train/
        return _folder_example(images[stem], masks[stem], image_size, index)

    return prepare_with_tfds(
        "lung-folder",
        "jaxadl_lung_folder",
        config,
        root=root,
        image_size=image_size,
        cases=split_cases,
        example=example,
        cache_dir=cache_dir,
        progress=progress,
        layout="fixed split" if fixed else "flat",
        seed=seed,
        val_fraction=val_fraction if not fixed or "val" not in found else None,
        test_fraction=None if fixed else test_fraction,
    )


# --------------------------------------------------------------------------------------------------
# Synthetic chest radiographs


def _box_blur(img: np.ndarray, radius: int) -> np.ndarray:
    """Separable box blur with edge padding along the last two axes (radius 0 = identity)."""
    if radius <= 0:
        return img
    k = 2 * radius + 1
    for axis in (-2, -1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis)
        n = img.shape[axis]
        img = (np.take(c, range(k, k + n), axis=axis) - np.take(c, range(0, n), axis=axis)) / k
    return img


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float
) -> np.ndarray:
    """Normalised ellipse radius (<1 inside) on a coordinate grid."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return np.sqrt((u / ax) ** 2 + (v / ay) ** 2)


def _synthetic_case(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = rng.uniform
    size = x.shape[0]
    # Body / thorax with soft edges, on a dark background with an intensity gradient.
    body_r = _ellipse(x, y, u(-0.05, 0.05), u(0.0, 0.12), u(0.78, 0.95), u(0.95, 1.15), u(-0.08, 0.08))
    body = 1.0 / (1.0 + np.exp((body_r - 1.0) * u(12, 25)))
    img = u(0.02, 0.15) + body * u(0.5, 0.75)
    # Lungs: bean shapes from two ellipses each, the cardiac notch cut from the patient's left lung.
    sep, top = u(0.28, 0.4), u(-0.2, 0.0)
    tilt = u(-0.12, 0.12)
    lungs = np.zeros(x.shape, bool)
    for side in (-1.0, 1.0):
        cx = side * (sep + u(-0.04, 0.04))
        ax, ay = u(0.2, 0.29), u(0.45, 0.6)
        ang = side * u(0.05, 0.22) + tilt
        lung = _ellipse(x, y, cx, top, ax, ay, ang) < 1.0
        lung |= (
            _ellipse(x, y, cx + side * u(0.0, 0.06), top + ay * 0.45, ax * u(1.0, 1.25), ay * 0.55, ang) < 1.0
        )
        lung &= y > top - ay * u(0.8, 0.95)  # flatter apex
        if side > 0:  # image right = patient's left: the heart indents the medial lower part
            notch = _ellipse(
                x, y, u(0.02, 0.12), top + ay * u(0.35, 0.6), u(0.2, 0.3), u(0.22, 0.32), u(-0.4, 0.4)
            )
            lung &= notch > 1.0
        lungs |= lung
    lung_depth = u(0.35, 0.6)
    soft_lungs = _box_blur(lungs.astype(np.float32), max(1, size // 96))
    img = img * (1.0 - lung_depth * soft_lungs)
    # Mediastinum / heart: a bright blob between the lungs.
    heart = _ellipse(x, y, u(0.0, 0.12), top + u(0.3, 0.45), u(0.22, 0.3), u(0.25, 0.35), u(-0.3, 0.3)) < 1.0
    img = img + heart * (~lungs) * u(0.05, 0.15)
    # Ribs: curved stripes across the thorax, visible over the lungs too.
    freq, phase, curve = u(11, 16), u(0, 2 * math.pi), u(0.4, 0.9)
    ribs = np.clip(np.sin(freq * (y - curve * x**2) + phase), 0.0, 1.0) ** 2
    img = img + ribs * body * u(0.04, 0.12) * (np.abs(x) > u(0.05, 0.12))
    # Distractors outside the lungs: dark blobs (gastric bubble, clothing) and bright markers.
    for _ in range(int(rng.integers(1, 4))):
        blob = _ellipse(x, y, u(-0.9, 0.9), u(-0.9, 0.95), u(0.05, 0.18), u(0.04, 0.14), u(0, math.pi)) < 1.0
        img = np.where(blob & ~lungs, img * u(0.3, 0.6), img)
    if u() < 0.5:
        mark = _ellipse(x, y, u(-0.9, 0.9), u(-0.95, -0.6), u(0.03, 0.08), u(0.03, 0.08), 0.0) < 1.0
        img = np.where(mark, u(0.85, 1.0), img)
    # Global gradient, blur, gamma / contrast / brightness, noise.
    gx, gy = u(-0.15, 0.15), u(-0.15, 0.15)
    img = img + gx * x + gy * y
    img = _box_blur(img, int(rng.integers(0, 3)) * max(1, size // 128))
    img = np.clip(img, 0.0, 1.0) ** u(0.7, 1.4)
    img = img * u(0.75, 1.2) + u(-0.08, 0.08)
    img = img + rng.normal(0.0, u(0.01, 0.05), img.shape)
    pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return pixels, lungs.astype(np.uint8)


def synthetic_lungs(
    n_train: int = 112, n_val: int = 12, n_test: int = 123, *, image_size: int = 256, seed: int = 0
) -> Dataset:
    """Deterministic chest-like radiographs with lung masks, generated in numpy (offline stand-in for JSRT).

    Each image: soft thorax, two bean-shaped darker lungs (one with a cardiac notch), heart, ribs,
    dark distractor blobs outside the lungs, gradient, blur, gamma/contrast/brightness and noise.
    """
    _check_size(image_size)
    coords = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, (split, n) in enumerate(zip(_SPLITS, (n_train, n_val, n_test), strict=True)):
        if n < 0:
            raise DatasetError(f"n_{split} must be >= 0, got {n}")
        rng = np.random.default_rng([seed, k])
        cases = [_synthetic_case(rng, x, y) for _ in range(n)]
        shape = (n, image_size, image_size, 1)
        arrays[split] = (
            np.stack([c[0] for c in cases]).reshape(shape) if n else np.zeros(shape, np.uint8),
            np.stack([c[1] for c in cases]).reshape(shape) if n else np.zeros(shape, np.uint8),
        )
    meta = {"seed": seed, "image_size": image_size, "synthetic": True}
    return _dataset("synthetic-lungs", _splits_from_arrays(arrays), meta)

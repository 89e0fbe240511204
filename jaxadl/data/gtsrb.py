"""Real GTSRB traffic-sign data (43 classes) as a TFDS builder that runs without TensorFlow.

The source (official zips, their extracted trees, or the common ``Train/``/``Test/`` PNG re-packaging) is
decoded once into fixed-size uint8 images and written by a ``GeneratorBasedBuilder`` as array_record files
under the cache, read back once with ``as_data_source()`` (``as_dataset()`` would need TensorFlow) and
mirrored in a plain .npz that later calls load in well under a second; they only split off validation
tracks. See ``load_gtsrb``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import sys
import time
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxadl.data.base import Dataset, DatasetError, Split
from jaxadl.data.signs import CLASS_NAMES
from jaxadl.data.tfds_util import LocalBuilder, LocalInfo, default_cache_dir, fingerprint, quiet_tfds

NUM_CLASSES = 43
DOWNLOAD_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_ZIP = "GTSRB_Final_Test_Images.zip"
TEST_GT_ZIP = "GTSRB_Final_Test_GT.zip"
ARCHIVES = (TRAIN_ZIP, TEST_ZIP, TEST_GT_ZIP)
CROPS = ("roi", "none")
TRACK_GROUP_ROWS = 30  # frames per track in GTSRB; used when file names carry no track number

_ROI_COLS = ("Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")
_OFFICIAL_COLS = ("Filename",) + _ROI_COLS
_REPACK_COLS = _ROI_COLS + ("Path",)
_TRAIN_CSV_RE = re.compile(r"^(?P<dir>(?:.*/)?(?P<cls>\d{5}))/GT-(?P=cls)\.csv$")
_TEST_IMG_RE = re.compile(r"^(?P<dir>(?:.*/)?Final_Test/Images)/\d{5}\.(?:ppm|png)$", re.IGNORECASE)
_OFFICIAL_NAME_RE = re.compile(r"^(\d+)_(\d+)\.[A-Za-z]+$")  # TTTTT_FFFFF.ppm
_REPACK_NAME_RE = re.compile(r"^(\d+)_(\d+)_(\d+)\.[A-Za-z]+$")  # CC_TTTTT_FFFFF.png
_IMAGE_EXTS = (".ppm", ".png", ".jpg", ".jpeg", ".bmp")

_HELP = (
    "Put the official archives {archives} (or their extracted GTSRB/ tree, or the Train/ Test/ Train.csv "
    "Test.csv re-packaging) in one directory and pass it with --data-dir (data_dir=...) or the environment "
    "variable JAXADL_GTSRB_DIR; they are available from {url}. Use --dataset=synthetic to run offline."
)


def _help() -> str:
    return _HELP.format(archives=", ".join(ARCHIVES), url=DOWNLOAD_URL)


# --------------------------------------------------------------------------------------------------------
# Source: a read-only view over a directory's files and the members of the official zips inside it.


class _Files:
    """Files under ``root`` plus the members of any official GTSRB zip in it, by POSIX path.

    Zip members appear under their path inside the zip, so a zip and its extracted tree look alike and a
    layout is detected once for both. Extracted files win over zip members with the same path.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._disk: dict[str, Path] = {}
        self._members: dict[str, tuple[Path, str]] = {}
        self._zips: dict[Path, zipfile.ZipFile] = {}
        self.num_files = 0
        self.total_bytes = 0
        self._lower: dict[str, str] = {}
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                self.num_files += 1
                self.total_bytes += size
                self._disk[path.relative_to(root).as_posix()] = path
                if name in ARCHIVES:
                    self._add_zip(path)
        self._lower = {p.lower(): p for p in self.paths()}

    def _add_zip(self, path: Path) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{path}: not a readable zip archive ({e}); delete or replace it") from e
        self._zips[path] = zf
        for info in zf.infolist():
            if not info.is_dir():
                self._members.setdefault(info.filename, (path, info.filename))

    def paths(self) -> list[str]:
        """All virtual paths, sorted."""
        return sorted(set(self._disk) | set(self._members))

    def exists(self, vpath: str) -> bool:
        return vpath in self._disk or vpath in self._members

    def lookup(self, vpath: str) -> str | None:
        """The stored path for ``vpath``, tolerating case and a .ppm/.png re-encoding; None if absent."""
        if self.exists(vpath):
            return vpath
        stem, _ = os.path.splitext(vpath)
        for cand in [vpath] + [stem + ext for ext in _IMAGE_EXTS]:
            hit = self._lower.get(cand.lower())
            if hit is not None:
                return hit
        return None

    def describe(self, vpath: str) -> str:
        """Where ``vpath`` lives, for error messages."""
        if vpath in self._disk:
            return str(self._disk[vpath])
        zpath, member = self._members[vpath]
        return f"{zpath}:{member}"

    def read(self, vpath: str) -> bytes:
        if vpath in self._disk:
            return self._disk[vpath].read_bytes()
        zpath, member = self._members[vpath]
        return self._zips[zpath].read(member)

    def key(self) -> str:
        """Hash of the root and every file's path, size and modification time: another source, or an edit
        of any file in this one, never reuses this cache."""
        return fingerprint(self.root, self._disk.values())

    def close(self) -> None:
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()


@dataclasses.dataclass(frozen=True)
class _Record:
    """One image to decode: where it is, its CSV size and ROI, its label and (class, track) group."""

    vpath: str
    width: int
    height: int
    roi: tuple[int, int, int, int]
    label: int
    track: int
    where: str  # "file.csv line N", for errors


@dataclasses.dataclass
class _Plan:
    """What a source holds: train and test records and how they were found."""

    layout: str
    train: list[_Record]
    test: list[_Record] | None
    track_source: str
    notes: list[str]


def _read_csv(files: _Files, vpath: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a ';' or ',' separated CSV with (line number, row); DatasetError on missing columns."""
    try:
        text = files.read(vpath).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{files.describe(vpath)}: cannot read CSV ({e})") from e
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delim)
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = [c for c in required if c not in fields]
    if missing:
        raise DatasetError(
            f"{files.describe(vpath)}: CSV is missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(fields) or 'nothing'})"
        )
    return [(i + 2, row) for i, row in enumerate(reader) if any((v or "").strip() for v in row.values())]


def _parse_ints(files: _Files, csv_path: str, line: int, row: dict[str, str]) -> dict[str, int]:
    where = f"{files.describe(csv_path)} line {line}"
    try:
        vals = {c: int(float(row[c].strip())) for c in _ROI_COLS}
    except (TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"{where}: non-numeric value in {row} ({e})") from e
    if not 0 <= vals["ClassId"] < NUM_CLASSES:
        raise DatasetError(f"{where}: ClassId {vals['ClassId']} outside 0..{NUM_CLASSES - 1}")
    if vals["Width"] <= 0 or vals["Height"] <= 0:
        raise DatasetError(f"{where}: Width/Height must be positive, got {vals['Width']}x{vals['Height']}")
    return vals


def _record(
    files: _Files, csv_path: str, line: int, row: dict[str, str], image_rel: str, base: str, track: int
) -> _Record:
    vals = _parse_ints(files, csv_path, line, row)
    target = f"{base}/{image_rel}" if base else image_rel
    found = files.lookup(target)
    if found is None:
        raise DatasetError(
            f"{files.describe(csv_path)} line {line}: image file {image_rel!r} is missing "
            f"(looked for {target} in {files.root})"
        )
    roi = (vals["Roi.X1"], vals["Roi.Y1"], vals["Roi.X2"], vals["Roi.Y2"])
    where = f"{files.describe(csv_path)} line {line}"
    return _Record(found, vals["Width"], vals["Height"], roi, vals["ClassId"], track, where)


def _group_rows(records: list[_Record]) -> list[_Record]:
    """Give records without a track number one: groups of 30 consecutive rows per class."""
    seen: dict[int, int] = {}
    out = []
    for r in records:
        i = seen.get(r.label, 0)
        seen[r.label] = i + 1
        out.append(dataclasses.replace(r, track=i // TRACK_GROUP_ROWS))
    return out


def _official_train(files: _Files, csvs: list[re.Match]) -> tuple[list[_Record], str, list[str]]:
    notes = []
    roots: dict[str, list[re.Match]] = {}
    for m in csvs:
        roots.setdefault(m.group("dir").rpartition("/")[0], []).append(m)
    root = sorted(roots, key=lambda r: (-len(roots[r]), len(r), r))[0]
    if len(roots) > 1:
        notes.append(f"several training trees found; used {root or '.'}")
    records: list[_Record] = []
    named = True
    for m in sorted(roots[root], key=lambda m: m.group("cls")):
        csv_path = m.group(0)
        rows = _read_csv(files, csv_path, _OFFICIAL_COLS)
        for line, row in rows:
            fname = row["Filename"].strip()
            tm = _OFFICIAL_NAME_RE.match(os.path.basename(fname))
            named &= tm is not None
            track = int(tm.group(1)) if tm else -1
            records.append(_record(files, csv_path, line, row, fname, m.group("dir"), track))
    if not named:
        notes.append("some training file names lack TTTTT_FFFFF; tracks = 30 consecutive rows per class")
        return _group_rows(records), "rows30", notes
    return records, "filename", notes


def _official_test(files: _Files, paths: list[str]) -> tuple[list[_Record] | None, list[str]]:
    img_dirs = sorted({m.group("dir") for p in paths if (m := _TEST_IMG_RE.match(p))})
    gts = [p for p in paths if os.path.basename(p).lower() == "gt-final_test.csv"]
    if not img_dirs and not gts:
        return None, []
    if not gts:
        return None, [f"test images in {img_dirs[0]} but no GT-final_test.csv with labels ({TEST_GT_ZIP})"]
    if not img_dirs:
        img_dirs = [gts[0].rpartition("/")[0]]
    img_dir = img_dirs[0]
    # Prefer the ground truth next to the images, then the shortest path (top of the source dir).
    gt = sorted(gts, key=lambda p: (p.rpartition("/")[0] != img_dir, len(p), p))[0]
    rows = _read_csv(files, gt, _OFFICIAL_COLS)
    recs = [_record(files, gt, line, row, row["Filename"].strip(), img_dir, -1) for line, row in rows]
    return recs, []


def _repack(files: _Files, csv_path: str, train: bool) -> tuple[list[_Record], bool]:
    base = csv_path.rpartition("/")[0]
    rows = _read_csv(files, csv_path, _REPACK_COLS)
    records = []
    named = True
    for line, row in rows:
        rel = row["Path"].strip().replace("\\", "/")
        tm = _REPACK_NAME_RE.match(os.path.basename(rel)) if train else None
        named &= tm is not None
        track = int(tm.group(2)) if tm else -1
        records.append(_record(files, csv_path, line, row, rel, base, track))
    return records, named


def _plan(files: _Files) -> _Plan:
    """Find a GTSRB layout in ``files``; DatasetError when there is none."""
    paths = files.paths()
    notes: list[str] = []
    train_csvs = [m for p in paths if (m := _TRAIN_CSV_RE.match(p))]
    repack_train = sorted((p for p in paths if os.path.basename(p).lower() == "train.csv"), key=len)
    repack_test = sorted((p for p in paths if os.path.basename(p).lower() == "test.csv"), key=len)
    test, test_notes = _official_test(files, paths)
    notes += test_notes
    if train_csvs:
        train, track_source, more = _official_train(files, train_csvs)
        notes += more
        layout = "official"
    elif repack_train:
        train, named = _repack(files, repack_train[0], train=True)
        track_source = "filename" if named else "rows30"
        if not named:
            train = _group_rows(train)
            notes.append("file names lack CC_TTTTT_FFFFF; tracks = 30 consecutive rows per class")
        layout = "repackaged"
    else:
        raise DatasetError(
            f"{files.root}: no GTSRB training data found among {files.num_files} file(s) "
            f"(looked for {TRAIN_ZIP}, GTSRB/Final_Training/Images/000CC/GT-000CC.csv or Train.csv). "
            + _help()
        )
    if test is None and repack_test:
        test, _ = _repack(files, repack_test[0], train=False)
    if not train:
        raise DatasetError(f"{files.root}: the training CSVs list no images")
    if test is not None and not test:
        notes.append("test CSV lists no images; test split omitted")
        test = None
    if test is None and not test_notes:
        notes.append("the source has no test set")
    return _Plan(layout, train, test, track_source, notes)


# --------------------------------------------------------------------------------------------------------
# Decoding


def _decode(files: _Files, rec: _Record, image_size: int, crop: str) -> np.ndarray:
    """Decode one image, crop to its (rescaled) ROI if asked, and resize to image_size² RGB uint8."""
    try:
        with Image.open(io.BytesIO(files.read(rec.vpath))) as im:
            im.load()
            img = im.convert("RGB")
    except (
        OSError,
        EOFError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        zipfile.BadZipFile,
    ) as e:
        raise DatasetError(f"{files.describe(rec.vpath)}: unreadable or corrupt image ({e})") from e
    w, h = img.size
    box: tuple[float, float, float, float] = (0.0, 0.0, float(w), float(h))
    if crop == "roi":
        # The CSV gives the ROI in the original image's pixels; copies are often re-encoded at another
        # size, so scale the box by actual/CSV size. Roi.X2/Y2 act as exclusive ends (symmetric margins).
        sx, sy = w / rec.width, h / rec.height
        x1, y1, x2, y2 = rec.roi
        box = (max(0.0, x1 * sx), max(0.0, y1 * sy), min(float(w), x2 * sx), min(float(h), y2 * sy))
        if box[2] - box[0] < 1e-3 or box[3] - box[1] < 1e-3:
            raise DatasetError(f"{rec.where}: empty ROI {rec.roi} for a {rec.width}x{rec.height} image")
    # Pillow's bilinear resize widens its filter when shrinking, i.e. it is antialiased.
    out = img.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
    return np.asarray(out, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------------
# TFDS builder (TensorFlow-free: Tensor features, array_record files, read with as_data_source()).


class GtsrbConfig(tfds.core.BuilderConfig):
    """Image size and crop mode, named like ``s28_roi``: each gives its own prepared files."""

    def __init__(self, *, image_size: int, crop: str) -> None:
        super().__init__(
            name=config_name(image_size, crop),
            description=f"{image_size}x{image_size} RGB, crop={crop}",
        )
        self.image_size = image_size
        self.crop = crop


def config_name(image_size: int, crop: str) -> str:
    """Builder config name for an image size and crop mode, e.g. ``s28_roi``."""
    return f"s{image_size}_{crop}"


class JaxadlGtsrb(LocalBuilder, skip_registration=True):
    """GTSRB decoded to fixed-size uint8 images with label and track id, written as array_record.

    Pass ``files`` (the source view) when it has to be prepared; reading a prepared one needs no source.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    BUILDER_CONFIGS = [GtsrbConfig(image_size=s, crop=c) for s in (28, 32, 48, 64) for c in CROPS]
    DEFAULT_CONFIG_NAME = "s28_roi"

    def __init__(self, *, files: _Files | None = None, progress: bool = False, **kwargs: Any) -> None:
        self._files = files
        self._progress = progress
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return LocalInfo(
            builder=self,
            description="GTSRB traffic signs (43 classes), decoded and resized for jaxadl.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                    "track": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
            homepage="https://benchmark.ini.rub.de/gtsrb_dataset.html",
            citation="Stallkamp et al., Man vs. computer: Benchmarking machine learning algorithms for "
            "traffic sign recognition, Neural Networks 32, 2012.",
        )

    def _download_and_prepare(self, dl_manager: Any, download_config: Any) -> None:
        start = time.perf_counter()
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        self.info.metadata["prepare_seconds"] = round(time.perf_counter() - start, 2)

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        if self._files is None:
            raise RuntimeError("JaxadlGtsrb needs files= to prepare")
        plan = _plan(self._files)
        cfg = self.builder_config
        self.info.metadata.update(
            source=str(self._files.root),
            source_layout=plan.layout,
            track_source=plan.track_source,
            notes=plan.notes,
        )
        if self._progress:
            n = len(plan.train) + len(plan.test or [])
            _log(
                f"preparing {n} images ({cfg.name}) from {self._files.root} into {self.data_path.parent} ..."
            )
        splits = {"train": self._generate_examples(plan.train)}
        if plan.test is not None:
            splits["test"] = self._generate_examples(plan.test)
        return splits

    def _generate_examples(self, records: list[_Record]) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg = self.builder_config
        assert self._files is not None
        for i, rec in enumerate(records):
            img = _decode(self._files, rec, cfg.image_size, cfg.crop)
            yield i, {"image": img, "label": rec.label, "track": rec.track}


# --------------------------------------------------------------------------------------------------------
# Loading


def _log(msg: str) -> None:
    print(f"gtsrb: {msg}", file=sys.stderr, flush=True)


def _download(dest: Path) -> None:
    """Fetch the three official archives into ``dest`` (each via a .part file renamed when complete)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVES:
        final = dest / name
        if final.exists():
            continue
        part = dest / (name + ".part")
        url = DOWNLOAD_URL + name
        _log(f"downloading {url} -> {final}")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            with zipfile.ZipFile(part) as zf:
                zf.infolist()
            os.replace(part, final)
        except (OSError, zipfile.BadZipFile) as e:
            part.unlink(missing_ok=True)
            raise DatasetError(f"could not download {url} ({e}). " + _help()) from e


def _resolve_source(data_dir: str | os.PathLike | None, cache_dir: Path, download: bool) -> _Files:
    """The directory to read: data_dir, else $JAXADL_GTSRB_DIR, else the downloaded archives.

    A folder the user named must hold the data: a typo is an error, never a silent download.
    """
    named = "data_dir" if data_dir is not None else "$JAXADL_GTSRB_DIR"
    given = data_dir if data_dir is not None else os.environ.get("JAXADL_GTSRB_DIR") or None
    if given is not None:
        root = Path(given).expanduser().absolute()
        if not root.exists():
            raise DatasetError(f"{root} ({named}) does not exist. " + _help())
        if not root.is_dir():
            raise DatasetError(
                f"{root} ({named}) is not a directory; pass the directory that holds the data. " + _help()
            )
        files = _Files(root)
        if files.num_files:
            return files
        files.close()
        raise DatasetError(f"{root} ({named}) holds no GTSRB archives or image trees. " + _help())
    dl_dir = cache_dir / "downloads" / "gtsrb"
    files = _Files(dl_dir)
    if files.exists(TRAIN_ZIP) and (not download or all(files.exists(a) for a in ARCHIVES)):
        return files
    files.close()
    if not download:
        raise DatasetError(
            "GTSRB not found: no data_dir given, JAXADL_GTSRB_DIR is not set, and download=False. " + _help()
        )
    _download(dl_dir)
    return _Files(dl_dir)


def _read_split(source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(source)
    images = labels = tracks = None
    step = 8192
    for lo in range(0, n, step):
        batch = source.__getitems__(list(range(lo, min(n, lo + step))))
        if images is None:
            shape = batch[0]["image"].shape
            images = np.empty((n, *shape), np.uint8)
            labels = np.empty(n, np.int32)
            tracks = np.empty(n, np.int64)
        images[lo : lo + len(batch)] = np.stack([b["image"] for b in batch])
        labels[lo : lo + len(batch)] = [b["label"] for b in batch]
        tracks[lo : lo + len(batch)] = [b["track"] for b in batch]
    assert images is not None and labels is not None and tracks is not None
    return images, labels, tracks


NPZ_NAME = "jaxadl_arrays.npz"


def _load_arrays(builder: JaxadlGtsrb) -> tuple[dict[str, np.ndarray], str]:
    """All splits as arrays, from the .npz beside the array_record files, else from TFDS (then the npz).

    TFDS parses each example in Python (~2-4 s for 39k images on 2 cores); the uncompressed npz is a plain
    copy that loads in a fraction of a second. It is written to a temp file and renamed, inside the TFDS
    folder it mirrors, so it is never partial and never outlives that folder.
    """
    npz = builder.data_path / NPZ_NAME
    if npz.exists():
        try:
            with np.load(npz) as z:
                arrays = {k: z[k] for k in z.files}
            if {"train_images", "train_labels", "train_tracks"} <= arrays.keys():
                return arrays, "npz"
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(
                f"unreadable array copy {npz} ({e}); rebuilding it from the TFDS files", stacklevel=2
            )
    sources = builder.as_data_source()
    arrays = dict(
        zip(("train_images", "train_labels", "train_tracks"), _read_split(sources["train"]), strict=True)
    )
    if "test" in sources:
        arrays["test_images"], arrays["test_labels"], _ = _read_split(sources["test"])
    tmp = npz.with_name(f".{NPZ_NAME}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, npz)
    except OSError as e:  # a read-only cache still works, only slower
        warnings.warn(f"could not write the array copy {npz} ({e}); loading stays slower", stacklevel=2)
    finally:
        tmp.unlink(missing_ok=True)
    return arrays, "array_record"


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

    The cache (``cache_dir``, else ``$JAXADL_DATA_DIR``, else ``~/.cache/jaxadl``) is keyed by the
    source's resolved path, each source file's path, size and modification time (an edit re-prepares),
    and by image size and crop; TFDS writes it into a temporary folder renamed when complete, so a
    failed preparation leaves nothing that looks finished. A plain .npz copy of the arrays beside it
    makes later loads take well under a second.
    Raises DatasetError naming the file for missing or malformed data, ValueError for bad arguments.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    image_size = int(image_size)
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    cache = default_cache_dir(cache_dir)

    files = _resolve_source(data_dir, cache, download)
    try:
        name = config_name(image_size, crop)
        known = {c.name for c in JaxadlGtsrb.BUILDER_CONFIGS}
        config: str | GtsrbConfig = name if name in known else GtsrbConfig(image_size=image_size, crop=crop)
        data_root = cache / "tfds" / f"gtsrb-{files.key()}"
        with quiet_tfds():
            builder = JaxadlGtsrb(
                data_dir=data_root, config=config, files=files, progress=progress, file_format="array_record"
            )
        # TFDS renames the whole variant folder into place when done, so its existence means finished.
        prepared_now = not (builder.data_path / "dataset_info.json").exists()
        if prepared_now:
            t0 = time.perf_counter()
            try:
                with quiet_tfds():
                    builder.download_and_prepare(
                        download_dir=data_root / "downloads",
                        download_config=tfds.download.DownloadConfig(manual_dir=str(files.root)),
                    )
            except DatasetError:
                raise
            except Exception as e:
                cause: BaseException | None = e  # TFDS may wrap errors raised inside the generator
                while cause is not None and not isinstance(cause, DatasetError):
                    cause = cause.__cause__ or cause.__context__
                if cause is not None:
                    raise cause from e
                if not (builder.data_path / "dataset_info.json").exists():
                    raise
                # Another process finished the same preparation first: use its result.
            if progress:
                _log(f"done in {time.perf_counter() - t0:.1f} s: {builder.data_path}")
            with quiet_tfds():
                builder = JaxadlGtsrb(data_dir=data_root, config=config, file_format="array_record")
    finally:
        files.close()

    t0 = time.perf_counter()
    arrays, read_from = _load_arrays(builder)
    load_seconds = time.perf_counter() - t0
    train_images, train_labels, train_tracks = (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["train_tracks"],
    )
    test = Split(arrays["test_images"], arrays["test_labels"]) if "test_images" in arrays else None

    val_mask = track_split(train_labels, train_tracks, val_fraction, seed)
    train = Split(train_images[~val_mask], train_labels[~val_mask])
    val = Split(train_images[val_mask], train_labels[val_mask]) if val_fraction > 0 else None

    stored = dict(builder.info.metadata)
    groups = train_labels.astype(np.int64) * 1_000_000 + train_tracks
    meta: dict[str, Any] = {
        "source": stored.get("source", str(files.root)),
        "source_layout": stored.get("source_layout"),
        "source_key": files.key(),
        "cache_path": str(builder.data_path),
        "config": name,
        "image_size": image_size,
        "crop": crop,
        "prepared_now": prepared_now,
        "prepare_seconds": stored.get("prepare_seconds"),
        "load_seconds": round(load_seconds, 3),
        "read_from": read_from,
        "class_names": list(CLASS_NAMES),
        "counts": {k: len(v) for k, v in {"train": train, "val": val, "test": test}.items() if v is not None},
        "tracks": {
            "train": int(len(np.unique(groups[~val_mask]))),
            "val": int(len(np.unique(groups[val_mask]))),
        },
        "track_source": stored.get("track_source"),
        "val_fraction": val_fraction,
        "seed": seed,
        "notes": list(stored.get("notes", [])),
    }
    return Dataset(name="gtsrb", train=train, val=val, test=test, num_classes=NUM_CLASSES, meta=meta)

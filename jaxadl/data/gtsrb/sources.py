"""Where GTSRB comes from: the source folder's files and zip members, and the layout found among them.

Three layouts are recognised: the official zips, their extracted ``GTSRB/`` tree, and the common
``Train/``/``Test/`` PNG re-packaging with ``Train.csv``/``Test.csv``. :func:`plan` turns a source into
the list of images to decode with their labels, sign boxes and track numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path

from jaxadl.data.base import DATA_DIR_ARG, DatasetError
from jaxadl.data.cache import fingerprint
from jaxadl.data.signs import NUM_CLASSES

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
    "Test.csv re-packaging) in one directory and pass it with {arg} or the environment "
    "variable JAXADL_GTSRB_DIR; they are available from {url}. Use --dataset=synthetic to run offline."
)


def log(msg: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(f"gtsrb: {msg}", file=sys.stderr, flush=True)


def help_text() -> str:
    """Where to put GTSRB and where to get it: the end of every "not found" message, which names the
    folder's argument as "{arg}" (a DatasetError with arg=DATA_DIR_ARG fills it in)."""
    return _HELP.format(archives=", ".join(ARCHIVES), url=DOWNLOAD_URL, arg="{arg}")


class SourceFiles:
    """Files under ``root`` plus the members of any official GTSRB zip in it, by POSIX path.

    Zip members appear under their path inside the zip, so a zip and its extracted tree look alike and a
    layout is detected once for both. Extracted files win over zip members with the same path.
    """

    def __init__(self, root: Path, named: str = "") -> None:
        self.root = root
        # how an error names the folder: "{arg} /data" (an argument), "$JAXADL_GTSRB_DIR /data" or the path
        self.label = f"{named} {root}".strip()
        self._disk: dict[str, Path] = {}
        self._members: dict[str, tuple[Path, str]] = {}
        self._zips: dict[Path, zipfile.ZipFile] = {}
        self.num_files = 0
        self.total_bytes = 0
        self._lower: dict[str, str] = {}
        if root.is_dir():
            self._walk()
        self._lower = {p.lower(): p for p in self.paths()}

    def _walk(self) -> None:
        """List every readable file under the root (sorted), opening the official zips among them."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                try:
                    size = path.stat().st_size
                except OSError as e:  # e.g. a dangling link: not part of the source
                    warnings.warn(f"{path}: skipped, cannot read its size ({e})", stacklevel=2)
                    continue
                self.num_files += 1
                self.total_bytes += size
                self._disk[path.relative_to(self.root).as_posix()] = path
                if name in ARCHIVES:
                    self._add_zip(path)

    def _add_zip(self, path: Path) -> None:
        """Open an official zip and list its members under their own paths (files on disk win)."""
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
        """Whether ``vpath`` is a file or a zip member of the source."""
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
        """The bytes of a file or zip member."""
        if vpath in self._disk:
            return self._disk[vpath].read_bytes()
        zpath, member = self._members[vpath]
        return self._zips[zpath].read(member)

    def key(self) -> str:
        """Hash of the root and every file's path, size and modification time: another source, or an edit
        of any file in this one, never reuses this cache."""
        return fingerprint(self.root, self._disk.values())

    def close(self) -> None:
        """Close the zips opened for reading members."""
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()


@dataclasses.dataclass(frozen=True)
class Record:
    """One image to decode: where it is, its CSV size and ROI, its label and (class, track) group."""

    vpath: str
    width: int
    height: int
    roi: tuple[int, int, int, int]
    label: int
    track: int
    where: str  # "file.csv line N", for errors


@dataclasses.dataclass
class Plan:
    """What a source holds: train and test records and how they were found."""

    layout: str
    train: list[Record]
    test: list[Record] | None
    track_source: str
    notes: list[str]


def _read_csv(files: SourceFiles, vpath: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
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


def _parse_ints(files: SourceFiles, csv_path: str, line: int, row: dict[str, str]) -> dict[str, int]:
    """The size, ROI and class columns of a CSV row as ints; DatasetError naming the line if invalid."""
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
    files: SourceFiles, at: tuple[str, int], row: dict[str, str], image_rel: str, base: str, track: int
) -> Record:
    """One CSV row (`at`: the CSV's path and the row's line) as a Record whose image file exists;
    DatasetError naming the line otherwise."""
    csv_path, line = at
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
    return Record(found, vals["Width"], vals["Height"], roi, vals["ClassId"], track, where)


def _group_rows(records: list[Record]) -> list[Record]:
    """Give records without a track number one: groups of 30 consecutive rows per class."""
    seen: dict[int, int] = {}
    out = []
    for r in records:
        i = seen.get(r.label, 0)
        seen[r.label] = i + 1
        out.append(dataclasses.replace(r, track=i // TRACK_GROUP_ROWS))
    return out


def _official_train(files: SourceFiles, csvs: list[re.Match]) -> tuple[list[Record], str, list[str]]:
    """Training records of the official layout (one GT-000CC.csv per class), how tracks were found, notes."""
    notes = []
    roots: dict[str, list[re.Match]] = {}
    for m in csvs:
        roots.setdefault(m.group("dir").rpartition("/")[0], []).append(m)
    root = sorted(roots, key=lambda r: (-len(roots[r]), len(r), r))[0]
    if len(roots) > 1:
        notes.append(f"several training trees found; used {root or '.'}")
    records: list[Record] = []
    named = True
    for m in sorted(roots[root], key=lambda m: m.group("cls")):
        csv_path = m.group(0)
        rows = _read_csv(files, csv_path, _OFFICIAL_COLS)
        if not rows:  # a truncated copy: the class would silently vanish from training
            raise DatasetError(
                f"{files.describe(csv_path)}: the CSV has a header but no rows (no images of class "
                f"{int(m.group('cls'))}); replace it with the original from {TRAIN_ZIP}"
            )
        for line, row in rows:
            fname = row["Filename"].strip()
            tm = _OFFICIAL_NAME_RE.match(os.path.basename(fname))
            named &= tm is not None
            track = int(tm.group(1)) if tm else -1
            records.append(_record(files, (csv_path, line), row, fname, m.group("dir"), track))
    if not named:
        notes.append("some training file names lack TTTTT_FFFFF; tracks = 30 consecutive rows per class")
        return _group_rows(records), "rows30", notes
    return records, "filename", notes


def _official_test(files: SourceFiles, paths: list[str]) -> tuple[list[Record] | None, list[str]]:
    """Test records of the official layout (GT-final_test.csv), or None with a note when unlabelled."""
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
    recs = [_record(files, (gt, line), row, row["Filename"].strip(), img_dir, -1) for line, row in rows]
    return recs, []


def _repack(files: SourceFiles, csv_path: str, train: bool) -> tuple[list[Record], bool]:
    """Records of a re-packaged Train.csv/Test.csv, and whether every name carried its track number."""
    base = csv_path.rpartition("/")[0]
    rows = _read_csv(files, csv_path, _REPACK_COLS)
    records = []
    named = True
    for line, row in rows:
        rel = row["Path"].strip().replace("\\", "/")
        tm = _REPACK_NAME_RE.match(os.path.basename(rel)) if train else None
        named &= tm is not None
        track = int(tm.group(2)) if tm else -1
        records.append(_record(files, (csv_path, line), row, rel, base, track))
    return records, named


def plan(files: SourceFiles) -> Plan:
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
            f"{files.label}: no GTSRB training data found among {files.num_files} file(s) "
            f"(looked for {TRAIN_ZIP}, GTSRB/Final_Training/Images/000CC/GT-000CC.csv or Train.csv). "
            + help_text(),
            arg=DATA_DIR_ARG,
        )
    if test is None and repack_test:
        test, _ = _repack(files, repack_test[0], train=False)
    if not train:
        raise DatasetError(f"{files.label}: the training CSVs list no images", arg=DATA_DIR_ARG)
    if test is not None and not test:
        notes.append("test CSV lists no images; test split omitted")
        test = None
    if test is None and not test_notes:
        notes.append("the source has no test set")
    return Plan(layout, train, test, track_source, notes)

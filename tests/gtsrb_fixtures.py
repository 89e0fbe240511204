"""Tiny GTSRB look-alikes written into a temp dir, in the three layouts the loader accepts.

Every image has a blue margin and a coloured ROI. The CSV claims a 64×48 original while the file has
another size, so a loader that forgets to scale the ROI box crops margin. The ROI colour encodes the class
(green = 5·class) and the margin colour encodes the track (green = 40 + 40·track), so tests can check
labels, ROI scaling and track grouping from pixels alone.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = (0, 5, 42)
TRACKS = 4
FRAMES = 3
CSV_SIZE = (64, 48)  # what the CSV claims (Width, Height)
CSV_ROI = (16, 12, 48, 36)  # X1, Y1, X2, Y2 in CSV pixels
ACTUAL_SIZES = ((32, 32), (48, 24), (64, 48))  # real file sizes, cycled over frames
TEST_LABELS = (5, 0, 42, 5, 0)
HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"


def roi_colour(label: int) -> tuple[int, int, int]:
    return (250, 5 * label, 0)


def margin_colour(track: int) -> tuple[int, int, int]:
    return (0, 40 + 40 * track, 250)


def sign_image(label: int, track: int, size: tuple[int, int]) -> Image.Image:
    """A ``size`` image whose CSV_ROI, scaled from CSV_SIZE to ``size``, is the class colour."""
    w, h = size
    sx, sy = w / CSV_SIZE[0], h / CSV_SIZE[1]
    x1, y1, x2, y2 = CSV_ROI
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = margin_colour(track)
    arr[round(y1 * sy) : round(y2 * sy), round(x1 * sx) : round(x2 * sx)] = roi_colour(label)
    return Image.fromarray(arr)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format={"ppm": "PPM", "png": "PNG"}[fmt])
    return buf.getvalue()


def _csv_row(name: str, label: int, sep: str = ";") -> str:
    return sep.join([name, *(str(v) for v in (*CSV_SIZE, *CSV_ROI)), str(label)])


def official_files(test: bool = True, gt_next_to_images: bool = False) -> dict[str, bytes]:
    """Path -> bytes of an extracted official tree (training, and test with GT-final_test.csv)."""
    out: dict[str, bytes] = {}
    for c in CLASSES:
        d = f"GTSRB/Final_Training/Images/{c:05d}"
        rows = [HEADER]
        for t in range(TRACKS):
            for f in range(FRAMES):
                name = f"{t:05d}_{f:05d}.ppm"
                out[f"{d}/{name}"] = _encode(sign_image(c, t, ACTUAL_SIZES[f % len(ACTUAL_SIZES)]), "ppm")
                rows.append(_csv_row(name, c))
        out[f"{d}/GT-{c:05d}.csv"] = ("\n".join(rows) + "\n").encode()
    if test:
        d = "GTSRB/Final_Test/Images"
        rows = [HEADER]
        for i, c in enumerate(TEST_LABELS):
            name = f"{i:05d}.ppm"
            out[f"{d}/{name}"] = _encode(sign_image(c, 0, ACTUAL_SIZES[i % len(ACTUAL_SIZES)]), "ppm")
            rows.append(_csv_row(name, c))
        gt = ("\n".join(rows) + "\n").encode()
        out[f"{d}/GT-final_test.csv" if gt_next_to_images else "GT-final_test.csv"] = gt
    return out


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def official_zip_bytes(test: bool = True) -> dict[str, bytes]:
    """Archive name -> bytes of the three official zips (test images zip has an unlabelled CSV)."""
    files = official_files(test=test)
    parts: dict[str, dict[str, bytes]] = {"GTSRB_Final_Training_Images.zip": {}}
    if test:
        parts["GTSRB_Final_Test_Images.zip"] = {}
        parts["GTSRB_Final_Test_GT.zip"] = {}
    for rel, data in files.items():
        if rel.startswith("GTSRB/Final_Training/"):
            parts["GTSRB_Final_Training_Images.zip"][rel] = data
        elif rel == "GT-final_test.csv":
            parts["GTSRB_Final_Test_GT.zip"][rel] = data
            unlabelled = "\n".join(";".join(r.split(";")[:-1]) for r in data.decode().splitlines())
            parts["GTSRB_Final_Test_Images.zip"]["GTSRB/Final_Test/Images/GT-final_test.test.csv"] = (
                unlabelled + "\n"
            ).encode()
        else:
            parts["GTSRB_Final_Test_Images.zip"][rel] = data
    out = {}
    for name, members in parts.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in members.items():
                zf.writestr(rel, data)
        out[name] = buf.getvalue()
    return out


def write_zips(root: Path, test: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in official_zip_bytes(test=test).items():
        (root / name).write_bytes(data)
    return root


def write_repackaged(root: Path, named: bool = True, test: bool = True) -> Path:
    """The Train/<ClassId>/*.png, Test/*.png, Train.csv, Test.csv re-packaging (comma-separated)."""
    header = "Width,Height,Roi.X1,Roi.Y1,Roi.X2,Roi.Y2,ClassId,Path"
    rows = [header]
    for c in CLASSES:
        for t in range(TRACKS):
            for f in range(FRAMES):
                name = f"{c:05d}_{t:05d}_{f:05d}.png" if named else f"img_{c}_{t * FRAMES + f}.png"
                rel = f"Train/{c}/{name}"
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(_encode(sign_image(c, t, ACTUAL_SIZES[f % len(ACTUAL_SIZES)]), "png"))
                rows.append(",".join([*(str(v) for v in (*CSV_SIZE, *CSV_ROI)), str(c), rel]))
    (root / "Train.csv").write_text("\n".join(rows) + "\n")
    if test:
        rows = [header]
        for i, c in enumerate(TEST_LABELS):
            rel = f"Test/{i:05d}.png"
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_encode(sign_image(c, 0, ACTUAL_SIZES[i % len(ACTUAL_SIZES)]), "png"))
            rows.append(",".join([*(str(v) for v in (*CSV_SIZE, *CSV_ROI)), str(c), rel]))
        (root / "Test.csv").write_text("\n".join(rows) + "\n")
    return root

"""Decoding one GTSRB image: crop to its sign box (rescaled to the file's actual size), resize to RGB uint8."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from jaxadl.data.base import DatasetError
from jaxadl.data.gtsrb.sources import Record, SourceFiles


def decode_image(files: SourceFiles, rec: Record, image_size: int, crop: str) -> np.ndarray:
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

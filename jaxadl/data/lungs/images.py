"""Reading and resizing lung images and masks: grayscale in [0, 1] by the file's own bit depth, binary masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from jaxadl.data.base import DatasetError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INT_MODES = ("I", "I;16", "I;16B", "I;16L")  # Pillow's modes for integer samples deeper than 8 bits
_TIFF_BITS_PER_SAMPLE = 258


def check_size(image_size: int) -> None:
    """DatasetError unless the side length is a positive int."""
    if not isinstance(image_size, int) or image_size <= 0:
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")


def resize_gray(values: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (antialiased) resize of a float image in [0,1] to size×size uint8 0..255."""
    img = Image.fromarray(np.ascontiguousarray(values, np.float32))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a boolean mask and threshold at 0.5 so it stays binary; returns uint8 {0,1}."""
    if mask.shape == (size, size):
        return mask.astype(np.uint8)
    img = Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX)
    return (np.asarray(img) >= 0.5).astype(np.uint8)


def _png_bit_depth(path: Path) -> int:
    """The bit depth in a PNG's IHDR chunk (bytes 24 of the file), the same under every Pillow version."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG with an IHDR header")
    return head[24]


def bit_depth(img: Image.Image, path: Path) -> int:
    """Bits per sample of a grayscale image deeper than 8 bits, as the file states it.

    Pillow opens a 16-bit PNG as "I;16" or "I" depending on its version, so the depth is read from the
    PNG header (or a TIFF's BitsPerSample, or the "I;16" mode), never guessed from the pixel values.
    """
    if img.format == "PNG":
        return _png_bit_depth(path)
    if img.format == "TIFF" and _TIFF_BITS_PER_SAMPLE in getattr(img, "tag_v2", {}):
        bits = img.tag_v2[_TIFF_BITS_PER_SAMPLE]
        return int(bits[0] if isinstance(bits, tuple) else bits)
    if img.mode.startswith("I;16"):
        return 16
    raise DatasetError(
        f"{path}: cannot tell the bit depth of a {img.format} image in mode {img.mode}; "
        "save it as an 8- or 16-bit grayscale PNG"
    )


def open_gray(path: Path) -> np.ndarray:
    """Read any PIL-readable image as a 2-D float array in [0,1]: RGB -> L, deeper images by their bit depth."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "F":
                raise DatasetError(
                    f"{path}: a floating-point image has no bit depth; save it as 8- or 16-bit"
                )
            if img.mode in _INT_MODES:
                top = float(2 ** bit_depth(img, path) - 1)
                return np.clip(np.asarray(img, np.float32) / top, 0.0, 1.0)
            return np.asarray(img.convert("L"), np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e


def open_mask_values(path: Path) -> np.ndarray:
    """Read a mask file as 2-D uint8 values after conversion to L."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e

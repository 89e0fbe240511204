"""Reading and resizing lung images and masks: grayscale in [0, 1], binary masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from jaxadl.data.base import DatasetError


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


def open_gray(path: Path) -> np.ndarray:
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


def open_mask_values(path: Path) -> np.ndarray:
    """Read a mask file as 2-D uint8 values after conversion to L."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e

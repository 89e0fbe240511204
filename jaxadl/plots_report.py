"""Figures only the reproduced report draws (jaxadl.document): the confusion matrix, a gallery of
misclassified signs, and a lung mask before and after the clean-up. Drawn like jaxadl.plots' (own canvases,
constrained layout, nothing clipped), at a modest resolution so that the document stays small."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from jaxadl.plots import _save, figure, wrap

DPI = 90


def confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], title: str, path: str | Path, *, dpi: int = DPI
) -> Path:
    """A confusion matrix (rows: true class, columns: predicted class) on a log colour scale, so that single
    confusions show beside the diagonal's hundreds; rows named "id name", columns by class id."""
    matrix = np.asarray(matrix)
    n = len(matrix)
    side = max(4.0, 0.17 * n + 2.5)
    fig = figure(side + 1.5, side)
    ax = fig.subplots()
    shown = np.where(matrix > 0, matrix, np.nan)
    image = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(int(matrix.max()), 2)))
    ax.set_facecolor("white")
    ticks = np.arange(n)
    small = 6 if n > 20 else 8
    ax.set_xticks(ticks, [str(i) for i in ticks], fontsize=small, rotation=90)
    ax.set_yticks(ticks, [f"{i} {name}" for i, name in zip(ticks, class_names, strict=True)], fontsize=small)
    ax.set(xlabel="predicted class (id)", ylabel="true class", title=wrap(title, 70))
    ax.set_xticks(ticks - 0.5, minor=True)
    ax.set_yticks(ticks - 0.5, minor=True)
    ax.grid(which="minor", color="0.9", lw=0.3)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, shrink=0.6, label="images (log scale; blank = none)")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    bar.ax.yaxis.set_major_formatter(plain)
    bar.ax.yaxis.set_minor_formatter(plain)
    return _save(fig, path, dpi)


def gallery(
    images: np.ndarray,
    captions: Sequence[str],
    title: str,
    path: str | Path,
    *,
    columns: int = 6,
    dpi: int = DPI,
) -> Path:
    """Images in a grid, each with its caption under it (e.g. "true: stop / predicted: yield")."""
    images = np.asarray(images)
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = -(-count // columns)
    fig = Figure(figsize=(1.9 * columns, 2.3 * rows + 0.5))  # a fixed grid: many panels lay out slowly
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"hspace": 0.6, "wspace": 0.08}).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, caption in zip(axes, images, captions, strict=False):
        gray = image.shape[-1] == 1
        ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, interpolation="nearest")
        ax.set_title(wrap(caption, 24), fontsize=7)
    fig.suptitle(wrap(title, 16 * columns), y=0.99)
    return _save(fig, path, dpi)


def cleaning(
    image: np.ndarray,
    truth: np.ndarray,
    raw: np.ndarray,
    cleaned: np.ndarray,
    title: str,
    path: str | Path,
    *,
    dpi: int = DPI,
) -> Path:
    """One image's predicted mask before and after the clean-up: image, true mask, raw and cleaned mask, and
    what the clean-up changed (red: pixels removed, blue: holes filled)."""
    image, truth, raw, cleaned = (np.squeeze(np.asarray(a)) for a in (image, truth, raw, cleaned))
    raw, cleaned = raw > 0, cleaned > 0
    change = np.stack([image / 255.0] * 3, -1) * 0.6
    change[raw & ~cleaned] = (1.0, 0.15, 0.15)
    change[cleaned & ~raw] = (0.2, 0.4, 1.0)
    fig = figure(15, 3.6)
    axes = fig.subplots(1, 5)
    panels = [
        (image, "image", "gray", 255),
        (truth > 0, "true mask", "gray", 1),
        (raw, "raw prediction", "gray", 1),
        (cleaned, "cleaned (largest two regions, holes filled)", "gray", 1),
        (change, "changed: red removed, blue filled", None, None),
    ]
    for ax, (img, name, cmap, top) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0 if top else None, vmax=top, interpolation="nearest")
        ax.set_title(wrap(name, 28), fontsize=9)
        ax.axis("off")
    fig.suptitle(wrap(title, 140))
    return _save(fig, path, dpi)

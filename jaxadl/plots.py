"""Figures of the report: loss per trial, variants overlaid, train/val histories, a segmentation example."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def loss_curve(step_losses: np.ndarray, steps_per_epoch: int, title: str, path: str | Path) -> Path:
    """Training loss per step (light) and its running mean (dark), x axis in epochs (figures 10-17)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = np.arange(1, len(step_losses) + 1) / max(steps_per_epoch, 1)
    ax.plot(steps, step_losses, alpha=0.3, lw=0.8, label="per step")
    window = max(steps_per_epoch // 4, 1)
    smooth = _smooth(step_losses, window)
    ax.plot(steps[window - 1 :][: len(smooth)], smooth, lw=1.6, label=f"mean of {window} steps")
    ax.set(xlabel="epoch", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def overlay(curves: Mapping[str, Sequence[np.ndarray]], ylabel: str, title: str, path: str | Path) -> Path:
    """Per-epoch curves of several variants on one axis: the mean over trials, with min-max band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, runs in curves.items():
        runs = [np.asarray(r) for r in runs if len(r)]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        stack = np.stack([r[:n] for r in runs])
        epochs = np.arange(1, n + 1)
        (line,) = ax.plot(
            epochs, stack.mean(0), lw=1.6, label=f"{name} ({len(runs)} trial{'s' * (len(runs) > 1)})"
        )
        if len(runs) > 1:
            ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def history(records: Sequence[Mapping[str, float]], metric: str, title: str, path: str | Path) -> Path:
    """Training and validation loss and metric per epoch, side by side (figures 19-24)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [r["epoch"] for r in records]
    for ax, key in zip(axes, ("loss", metric), strict=True):
        for split in ("train", "val"):
            vals = [r.get(f"{split}_{key}") for r in records]
            if any(v is not None for v in vals):
                ax.plot(epochs, vals, marker=".", label=split)
        ax.set(xlabel="epoch", ylabel=key, title=f"{title}: {key}")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def segmentation(
    image: np.ndarray,
    mask: np.ndarray,
    pred: np.ndarray,
    title: str,
    path: str | Path,
    f1: float | None = None,
) -> Path:
    """Image, true mask, predicted mask and an overlay for one test image (figures 25-30)."""
    image, mask, pred = (np.squeeze(np.asarray(a)) for a in (image, mask, pred))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    overlay_rgb = np.stack([image / 255.0] * 3, -1) * 0.7
    overlay_rgb[..., 1] += 0.3 * (mask > 0)
    overlay_rgb[..., 0] += 0.3 * (pred > 0)
    panels = [
        (image, "image", "gray"),
        (mask, "true mask", "gray"),
        (pred, "predicted mask", "gray"),
        (np.clip(overlay_rgb, 0, 1), "overlay (green truth, red prediction)", None),
    ]
    for ax, (img, name, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title + (f" — F1 {f1:.4f}" if f1 is not None else ""))
    return _save(fig, path)

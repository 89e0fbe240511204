"""Figures of the report: loss per trial, variants overlaid, train/val histories, a segmentation example."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Figures are drawn on their own canvases (no pyplot): importing jaxadl leaves the process's matplotlib
# backend alone, and saving works without a display.


def _epoch_axis(ax: Axes) -> None:
    """Epochs are whole numbers: no 1.2, 1.4, ... ticks on short runs (one epoch: a single tick)."""
    lo, hi = ax.get_xlim()
    if hi - lo < 2:
        ax.set_xticks(range(math.ceil(lo), math.floor(hi) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def figure(width: float, height: float) -> Figure:
    """A figure on its own canvas whose layout makes room for every title, label and legend."""
    return Figure(figsize=(width, height), layout="constrained")


def wrap(text: str, width: int = 48) -> str:
    """Text broken into lines of at most `width` characters: a title or label never runs past its panel."""
    return "\n".join(textwrap.wrap(text, width)) or text


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure with everything drawn inside the image: nothing clipped at its edges."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return path


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def loss_curve(step_losses: np.ndarray, steps_per_epoch: int, title: str, path: str | Path) -> Path:
    """Training loss per step (light) and its running mean (dark), x axis in epochs (figures 10-17)."""
    fig = figure(6, 3.6)
    ax = fig.subplots()
    steps = np.arange(1, len(step_losses) + 1) / max(steps_per_epoch, 1)
    window = max(steps_per_epoch // 4, 1)
    ax.plot(steps, step_losses, alpha=0.3 if window > 1 else 1.0, lw=0.8, marker="." * (len(steps) < 30),
            label="per step")  # fmt: skip
    if window > 1:
        smooth = _smooth(step_losses, window)
        ax.plot(steps[window - 1 :][: len(smooth)], smooth, lw=1.6, label=f"mean of {window} steps")
    ax.set(xlabel="epoch", ylabel="training loss", title=wrap(title, 60))
    ax.set_xlim(0, max(steps[-1], 1 / max(steps_per_epoch, 1)) * 1.02 if len(steps) else 1)  # from epoch 0
    _epoch_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def overlay(panels: Mapping[str, Mapping[str, Sequence[np.ndarray]]], title: str, path: str | Path) -> Path:
    """Per-epoch curves of several variants, one panel per quantity (y label -> variant -> one curve per
    trial, NaN where an epoch has no value): the mean over trials, with a min-max band."""
    fig = figure(6.5 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels.items(), strict=True):
        for name, runs in curves.items():
            runs = [np.asarray(r) for r in runs if len(r)]
            if not runs:
                continue
            n = min(len(r) for r in runs)
            stack = np.stack([r[:n] for r in runs])
            shown = np.isfinite(stack).all(0)  # the epochs every trial has (--val-every validates fewer)
            stack, epochs = stack[:, shown], np.arange(1, n + 1)[shown]
            n = len(epochs)
            label = f"{name} ({len(runs)} trial{'s' * (len(runs) > 1)})"
            (line,) = ax.plot(epochs, stack.mean(0), lw=1.6, marker="." * (n < 30), label=label)
            if len(runs) > 1 and n > 1:
                ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.2)
            elif len(runs) > 1:  # one epoch: the min-max band is a bar
                ax.vlines(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.4, lw=4)
        ax.set(xlabel="epoch", ylabel=wrap(ylabel, 40), title=wrap(f"{title}: {ylabel}", 55))
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def history(
    records: Sequence[Mapping[str, float]],
    metric: str,
    title: str,
    path: str | Path,
    loss_name: str = "loss",
    objective_name: str | None = None,
) -> Path:
    """Loss and metric per epoch, train beside val (figures 19-24), each curve labelled with what it is.

    train_eval_loss and val_loss are the same loss (`loss_name`); the training objective (`objective_name`,
    e.g. with label smoothing or Dice) is drawn dashed only when it differs. Training figures come from the
    augmented batches of the epoch, validation figures from the model at the epoch's end.
    """
    fig = figure(10, 3.8)
    axes = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in records]
    curves = {
        "loss": [
            ("train_eval_loss", f"train: {loss_name} (augmented batches, during the epoch)", "C0-"),
            ("val_loss", f"val: {loss_name}", "C1-"),
        ],
        metric: [
            (f"train_{metric}", "train (augmented batches, during the epoch)", "C0-"),
            (f"val_{metric}", "val", "C1-"),
        ],
    }
    if objective_name and objective_name != loss_name:
        curves["loss"].insert(0, ("train_loss", f"train objective: {objective_name}", "C7--"))
    if not any("train_eval_loss" in r for r in records):  # a history recorded before train_eval_loss
        curves["loss"] = [("train_loss", f"train objective: {objective_name or loss_name}", "C0-")] + curves[
            "loss"
        ][-1:]
    for ax, (key, series) in zip(axes, curves.items(), strict=True):
        for field, label, style in series:
            points = [(e, r[field]) for e, r in zip(epochs, records, strict=True) if r.get(field) is not None]
            if points:  # validation only on the epochs that validate (--val-every)
                ax.plot(*zip(*points, strict=True), style, marker=".", label=label)
        ax.set(xlabel="epoch", ylabel=key, title=wrap(f"{title}: {key}", 55))
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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
    fig = figure(12, 3.4)
    axes = fig.subplots(1, 4)
    overlay_rgb = np.stack([image / 255.0] * 3, -1) * 0.7
    overlay_rgb[..., 1] += 0.3 * (mask > 0)
    overlay_rgb[..., 0] += 0.3 * (pred > 0)
    panels = [
        (image, "image", "gray", None),
        (mask > 0, "true mask", "gray", 1),  # a mask's 0 is black and 1 white, even when it is all one value
        (pred > 0, "predicted mask", "gray", 1),
        (np.clip(overlay_rgb, 0, 1), "overlay (green truth, red prediction)", None, None),
    ]
    for ax, (img, name, cmap, top) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0 if top else None, vmax=top)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(wrap(title + (f" — F1 {f1:.4f}" if f1 is not None else ""), 110))
    return _save(fig, path)

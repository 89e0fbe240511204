"""Host-side clean-up of predicted lung masks: keep the largest connected regions and fill their holes.

Not part of the network: results report per-image F1 with and without it. A lung field is two regions
(left and right lung); stray blobs elsewhere and holes inside a lung are what a plain U-Net gets wrong.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def clean_mask(mask: np.ndarray, keep: int = 2) -> np.ndarray:
    """The `keep` largest 8-connected regions of a binary mask [H, W] or [H, W, 1], holes filled."""
    m = np.asarray(mask, bool)
    plane = m.reshape(m.shape[:2]) if m.ndim == 3 else m
    labels, count = ndimage.label(plane, structure=np.ones((3, 3), bool))
    if count > keep:
        sizes = np.bincount(labels.ravel())[1:]
        kept = np.argsort(sizes)[::-1][:keep] + 1
        plane = np.isin(labels, kept)
    plane = ndimage.binary_fill_holes(plane)
    return plane.reshape(m.shape)


def clean_masks(masks: np.ndarray, keep: int = 2) -> np.ndarray:
    """clean_mask over a batch [N, H, W(, 1)]."""
    return np.stack([clean_mask(m, keep) for m in masks]) if len(masks) else np.asarray(masks, bool)


def f1_masks(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image F1 (Dice) of binary masks [N, ...] on the host; empty prediction of empty truth = 1."""
    p = np.asarray(pred, bool).reshape(len(pred), -1)
    t = np.asarray(truth, bool).reshape(len(truth), -1)
    tp = np.sum(p & t, axis=1).astype(np.float64)
    denom = p.sum(axis=1) + t.sum(axis=1)
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 1.0)

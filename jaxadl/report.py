"""Result tables shaped like the report's (table 1.4 for the CNN, table 2.1 for the U-Net)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _variants(trials: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        out.setdefault(t["variant"], []).append(t)
    return out


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def classification_table(trials: Sequence[dict[str, Any]], split: str) -> str:
    """Variant, trial, accuracy on `split` (test, or val when there is no test set), and mean ± std."""
    lines = [
        f"| variant | trial | {split} accuracy | best val accuracy | epochs run | selected epoch |",
        "|---|---|---|---|---|---|",
    ]
    summary = ["", f"| variant | trials | mean ± std {split} accuracy |", "|---|---|---|"]
    for name, runs in _variants(trials).items():
        accs = []
        for t in runs:
            if t.get("failed"):
                lines.append(f"| {name} | {t['trial']} | failed: {t['failed']} | — | — | — |")
                continue
            acc = t["eval"]["accuracy"]["mean"]
            accs.append(acc * 100)
            val = t.get("best_val")
            val_s = f"{val * 100:.2f} %" if val is not None else "—"
            lines.append(
                f"| {name} | {t['trial']} | {acc * 100:.2f} % | {val_s} | {t['epochs_run']} "
                f"| {t.get('best_epoch', '—')} |"
            )
        mean = (
            f"{np.mean(accs):.2f} ± {np.std(accs):.2f} %"
            if len(accs) > 1
            else (f"{accs[0]:.2f} %" if accs else "—")
        )
        summary.append(f"| {name} | {len(accs)} | {mean} |")
    return "\n".join(lines + summary)


def segmentation_table(trials: Sequence[dict[str, Any]], split: str) -> str:
    """Table 2.1: modification, trial, cases, mean / std / min per-image F1, the same after the host-side
    clean-up (largest two regions, holes filled; "—" where not recorded), and a per-variant summary."""
    lines = [
        f"| modification | trial | {split} cases | mean F1 | std F1 | min F1 "
        "| cleaned mean F1 | cleaned std F1 | cleaned min F1 | selected epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = [
        "",
        "| modification | trials | mean of mean F1 | mean of min F1 | cleaned: mean of mean F1 | cleaned: mean of min F1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in _variants(trials).items():
        means, mins, post_means, post_mins = [], [], [], []
        for t in runs:
            if t.get("failed"):
                lines.append(f"| {name} | {t['trial']} | — | failed: {t['failed']} | — | — | — | — | — | — |")
                continue
            f1, post = t["eval"]["f1"], t["eval"].get("f1_post")
            means.append(f1["mean"])
            mins.append(f1["min"])
            cleaned = "| — | — | —"
            if post is not None:
                post_means.append(post["mean"])
                post_mins.append(post["min"])
                cleaned = f"| {post['mean']:.4f} | {post['std']:.4f} | {post['min']:.4f}"
            lines.append(
                f"| {name} | {t['trial']} | {f1['n']} | {f1['mean']:.4f} | {f1['std']:.4f} | {f1['min']:.4f} "
                f"{cleaned} | {t.get('best_epoch', '—')} |"
            )
        summary.append(
            f"| {name} | {len(means)} | {_mean_std(means)} | {_mean_std(mins)} "
            f"| {_mean_std(post_means)} | {_mean_std(post_mins)} |"
        )
    return "\n".join(lines + summary)

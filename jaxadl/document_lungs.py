"""Part 2 of the reproduced report, lung segmentation: table 2.1 beside the original's, the history and
hardest-case figures (the original's figures 19-30), and what the original did not show: the per-case F1
sorted ascending, the worst cases' masks, and the raw prediction against the cleaned one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxadl import plots, plots_report, seed
from jaxadl.data.base import Dataset
from jaxadl.document_render import Block, Heading, Paragraph, table
from jaxadl.document_runs import Run, describe_split, epochs, figure, spread, trial_figures, wall_time
from jaxadl.report import ensemble_label

WORST = 3  # worst cases drawn


def section(run: Run | str, data: Dataset | None, files: Path) -> list[Block]:
    """Table 2.1, the U-Net figures and the lung extras (the missing run said in words)."""
    blocks: list[Block] = [Heading("2. Lung segmentation (JSRT): table 2.1")]
    if isinstance(run, str):
        return [*blocks, Paragraph(run), table_21(None, "the original's 123 test cases")]
    scored = describe_split(run, data, "cases")
    blocks += [
        Paragraph(
            f"The U-Net grid ({', '.join(run.variants())}) trained with the `{run.recipe}` recipe and scored on "
            f"{scored}. The original's F1 stands beside each row; F1 is per case, then its "
            "mean, std and min over the cases; the cleaned columns are the same after the clean-up (largest two regions, "
            "holes filled)."
        ),
        table_21(run, scored),
        Heading("Figures: training and validation histories (original figures 19–24)", 3),
        *figure(
            run.folder.variants_plot,
            "unet_variants.png",
            "Every U-Net variant's training objective and validation F1 per epoch, overlaid (mean of trials, "
            "min-max band).",
        ),
        *trial_figures(run, "history", "unet history", "loss and F1 per epoch, train beside validation"),
        Heading("Figures: each trial's hardest case (original figures 25–30)", 3),
        Paragraph(
            "The original shows one test image per trial; here each trial shows its hardest case (lowest F1)."
        ),
        *trial_figures(run, "example", "unet example", "the scored case with the lowest F1"),
    ]
    for variant in run.variants():
        path = run.folder.ensemble_plot(variant, "example")
        if run.ensemble(variant) and path.exists():
            blocks += figure(
                path, f"unet_{path.name}", f"{variant}, mean of its trials' logits: the hardest case."
            )
    return blocks + extras(run, data, files)


def table_21(run: Run | None, scored: str):
    """Table 2.1: the original's (cases, mean, std, min F1) per trial beside the reproduced ones, the cleaned
    F1, then mean ± std and the 95 % interval per variant."""
    split = run.split if run else "test"
    columns = ["original row", "variant", "trial", "original cases", "original mean F1", "original std F1"]
    columns += ["original min F1", f"{split} cases", "mean F1", "std F1", "min F1", "cleaned mean F1"]
    columns += ["cleaned min F1", "epochs", "selected epoch", "wall time"]
    names = list(run.variants()) if run else []
    names += [v for v in seed.UNET_F1 if all(seed.key(n) != v for n in names)]
    rows = []
    for name in names:
        records = run.variants().get(name, []) if run else []
        original, label = seed.unet_f1(name), seed.label("unet", name)
        for i in range(max(len(original), len(records))):
            r = records[i] if i < len(records) else None
            orig = (
                [str(seed.UNET_CASES), *(f"{v:.4f}" for v in original[i])] if i < len(original) else ["—"] * 4
            )
            if r is None:
                got = ["—", "not run", *["—"] * 7]
            elif r.get("failed"):
                got = ["—", f"failed: {r['failed']}", *["—"] * 7]
            else:
                got = [*_f1_cells(r), epochs(r), str(r.get("best_epoch", "—")), wall_time(r)]
            rows.append([label, name, str(r["trial"] if r else i + 1), *orig, *got])
        ensemble = run.ensemble(name) if run else None
        if ensemble:
            rows.append(
                [label, name, ensemble_label(ensemble), *["—"] * 4, *_f1_cells(ensemble), "—", "—", "—"]
            )
        done = [r["eval"] for r in records if not r.get("failed")]
        for k, what in enumerate(("mean ± std", "95 % interval")):
            orig = [spread([o[j] for o in original], _fmt4)[k] for j in range(3)]
            got = [spread([e["f1"][s] for e in done], _fmt4)[k] for s in ("mean", "std", "min")]
            post = [e["f1_post"] for e in done if e.get("f1_post")]
            cleaned = [spread([p[s] for p in post], _fmt4)[k] for s in ("mean", "min")]
            rows.append([label, name, what, "", *orig, "", *got, *cleaned, "", "", ""])
    recipe = f" Recipe: `{run.recipe}`." if run else ""
    caption = (
        "Table 2.1. Per-case F1 per trial, the original report's beside this reproduction's; then per variant "
        f"the mean ± std (n − 1) over trials and the 95 % t-interval of the mean. Scored on {scored}.{recipe}"
    )
    return table(caption, columns, rows)


def _fmt4(v: float) -> str:
    return f"{v:.4f}"


def _f1_cells(record: dict[str, Any]) -> list[str]:
    f1, post = record["eval"]["f1"], record["eval"].get("f1_post")
    cleaned = [f"{post[k]:.4f}" for k in ("mean", "min")] if post else ["—", "—"]
    return [str(f1["n"]), *(f"{f1[k]:.4f}" for k in ("mean", "std", "min")), *cleaned]


def extras(run: Run, data: Dataset | None, files: Path) -> list[Block]:
    """Per-case F1 sorted ascending, the worst cases' masks, raw against cleaned masks."""
    blocks: list[Block] = [Heading("Beyond the original: the hardest cases and the clean-up", 3)]
    variant = run.main_variant()
    if variant is None:
        return [*blocks, Paragraph("Left out: no trial finished.")]
    done, ensemble = run.finished(variant), run.ensemble(variant)
    chosen = ensemble or done[0]  # whose order and figures: the mean of trials when the run made one
    model = f"{variant}, {ensemble_label(ensemble)}" if ensemble else f"{variant}, trial {done[0]['trial']}"
    per = chosen["per_image"]
    f1, post = np.asarray(per["f1"]), np.asarray(per["f1_post"])
    order = np.argsort(f1, kind="stable")
    blocks.append(_per_case(run, variant, done, ensemble, order))
    changed = post - f1
    blocks.append(Paragraph(
        f"Clean-up, {model}: it raised the F1 of {int(np.sum(changed > 1e-6))} cases, lowered "
        f"{int(np.sum(changed < -1e-6))} and left {int(np.sum(np.abs(changed) <= 1e-6))} unchanged; mean F1 "
        f"{f1.mean():.4f} → {post.mean():.4f}, min F1 {f1.min():.4f} → {post.min():.4f}."
    ))  # fmt: skip
    split_name, split = run.scored(data)
    if split is None or len(split) != len(f1):
        reason = (
            "no dataset was given" if split is None else f"the data given has {len(split)} {split_name} cases"
        )
        return [*blocks, Paragraph(f"Masks not drawn: {reason}, the run scored {len(f1)}.")]
    return blocks + _masks(run, variant, chosen, split, files, model)


def _per_case(run: Run, variant: str, done: list[dict[str, Any]], ensemble: dict[str, Any] | None, order):
    per = [r["per_image"] for r in done]
    columns = ["rank", "case", *(f"trial {r['trial']} F1" for r in done)]
    if ensemble:
        columns.append("mean of trials F1")
    columns += ["cleaned F1", "change by cleaning"]
    last = (ensemble or done[0])["per_image"]
    rows = []
    for rank, i in enumerate(order, 1):
        cells = [f"{p['f1'][i]:.4f}" for p in per] + ([f"{last['f1'][i]:.4f}"] if ensemble else [])
        change = last["f1_post"][i] - last["f1"][i]
        rows.append([str(rank), str(last["cases"][i]), *cells, f"{last['f1_post'][i]:.4f}", f"{change:+.4f}"])
    whose = "the mean of its trials' logits" if ensemble else f"trial {done[0]['trial']}"
    caption = (
        f"Per-case F1 of {variant} on the {run.split} split, sorted ascending by {whose}; cleaned F1 and its "
        "change are the same predictions after the clean-up."
    )
    return table(caption, columns, rows)


def _masks(run: Run, variant: str, chosen: dict[str, Any], split, files: Path, model: str) -> list[Block]:
    """The worst cases' image, truth and prediction, and the case whose mask the clean-up changed most."""
    from jaxadl import predict  # restores checkpoints: only where predictions are drawn
    from jaxadl.postprocess import clean_masks, f1_masks

    predictor = predict.load(run.folder.root, variant, trial="all" if "trials" in chosen else chosen["trial"])
    batch = int(run.finished(variant)[0]["train_config"].get("eval_batch_size", 16))
    masks = np.asarray(predictor.batch_logits(split.images, batch))[..., 0] > 0
    cases, f1 = chosen["per_image"]["cases"], f1_masks(masks, split.labels)
    blocks: list[Block] = []
    for rank, i in enumerate(np.argsort(f1, kind="stable")[:WORST], 1):
        name = f"unet_worst{rank}.png"
        title = f"{model}: case {cases[i]}, worst {rank} of {len(f1)}"
        path = plots.segmentation(
            split.images[i], split.labels[i], masks[i], title, files / name, f1=float(f1[i])
        )
        caption = (
            f"Worst case {rank} of {len(f1)}: case {cases[i]}, F1 {f1[i]:.4f}; image, truth and prediction."
        )
        blocks += figure(path, name, caption)
    cleaned = clean_masks(masks)
    moved = (cleaned != masks).reshape(len(masks), -1).sum(1)
    i = int(np.argmax(moved))
    if not moved[i]:
        return [*blocks, Paragraph("The clean-up changed no predicted mask.")]
    after = float(f1_masks(cleaned[i : i + 1], split.labels[i : i + 1])[0])
    title = (
        f"{model}: case {cases[i]}, F1 {f1[i]:.4f} raw, {after:.4f} cleaned ({int(moved[i])} pixels changed)"
    )
    path = plots_report.cleaning(
        split.images[i], split.labels[i], masks[i], cleaned[i], title, files / "unet_cleaning.png"
    )
    caption = f"The case whose mask the clean-up changed most ({cases[i]}): raw against cleaned prediction."
    return blocks + figure(path, "unet_cleaning.png", caption)

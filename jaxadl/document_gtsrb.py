"""Part 1 of the reproduced report, traffic signs: table 1.4 beside the original's, the loss figures (the
original's figures 10-17), and what the original did not show: per-class accuracy, the confusion matrix, the
most-confused pairs and a gallery of misclassified signs, from the baseline's predictions on the scored split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxadl import plots_report, seed
from jaxadl.data.base import Dataset
from jaxadl.data.signs import CLASS_NAMES
from jaxadl.document_render import Block, Heading, Paragraph, table
from jaxadl.document_runs import (
    Run,
    describe_split,
    epochs,
    figure,
    predictions_note,
    spread,
    trial_figures,
    wall_time,
)
from jaxadl.report import ensemble_label

GALLERY = 24  # misclassified signs shown
PAIRS = 10  # most-confused pairs listed


def confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]; row c sums to the number of images of class c."""
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return matrix


def _pct(value: float) -> str:
    return f"{value:.2f} %"


def section(run: Run | str, data: Dataset | None, files: Path) -> list[Block]:
    """Table 1.4, the CNN figures and the GTSRB extras (the missing run said in words)."""
    blocks: list[Block] = [Heading("1. Traffic signs (GTSRB): table 1.4")]
    if isinstance(run, str):
        return [*blocks, Paragraph(run), table_14(None, "the original's test images")]
    scored = describe_split(run, data)
    blocks += [
        Paragraph(
            f"The CNN grid ({', '.join(run.variants())}) trained with the `{run.recipe}` recipe and scored on "
            f"{scored}. The original's accuracies stand beside each row."
        ),
        table_14(run, scored),
        Heading("Figures: the trials' training loss (original figures 10–17)", 3),
        *figure(
            run.folder.variants_plot,
            "cnn_variants.png",
            "Every CNN variant's training objective and validation accuracy per epoch, overlaid (mean of "
            "trials, min-max band). The original compares its figures 10–17 by eye instead.",
        ),
        *trial_figures(run, "loss", "cnn loss", "training loss per step"),
    ]
    return blocks + extras(run, data, files)


def table_14(run: Run | None, scored: str):
    """Table 1.4: the original's accuracy per trial beside the reproduced one, then mean ± std and the 95 %
    interval per variant."""
    split = run.split if run else "test"
    columns = ["original row", "variant", "trial", "original test accuracy", f"reproduced {split} accuracy"]
    columns += ["epochs", "selected epoch", "wall time"]
    names = list(run.variants()) if run else []
    names += [v for v in seed.CNN_ACCURACY if all(seed.key(n) != v for n in names)]
    rows = []
    for name in names:
        records = run.variants().get(name, []) if run else []
        original = seed.cnn_accuracy(name)
        label = seed.label("cnn", name)
        for i in range(max(len(original), len(records))):
            r = records[i] if i < len(records) else None
            got = "not run" if r is None else (f"failed: {r['failed']}" if r.get("failed") else _acc(r))
            rest = ["—"] * 3 if r is None else [epochs(r), str(r.get("best_epoch", "—")), wall_time(r)]
            orig = _pct(original[i]) if i < len(original) else "—"
            rows.append([label, name, str(r["trial"] if r else i + 1), orig, got, *rest])
        ensemble = run.ensemble(name) if run else None
        if ensemble:
            rows.append([label, name, ensemble_label(ensemble), "—", _acc(ensemble), "—", "—", "—"])
        done = [r["eval"]["accuracy"]["mean"] * 100 for r in records if not r.get("failed")]
        for k, what in enumerate(("mean ± std", "95 % interval")):
            cells = [_add_pct(spread(original, _fmt2)[k]), _add_pct(spread(done, _fmt2)[k])]
            rows.append([label, name, what, *cells, "", "", ""])
    recipe = f" Recipe: `{run.recipe}`." if run else ""
    caption = (
        "Table 1.4. Accuracy per trial, the original report's beside this reproduction's; then per variant "
        f"the mean ± std (n − 1) over trials and the 95 % t-interval of the mean. Scored on {scored}.{recipe}"
    )
    return table(caption, columns, rows)


def _fmt2(v: float) -> str:
    return f"{v:.2f}"


def _add_pct(cell: str) -> str:
    return cell if cell == "—" else f"{cell} %"


def _acc(record: dict[str, Any]) -> str:
    return _pct(record["eval"]["accuracy"]["mean"] * 100)


def class_names(record: dict[str, Any], num_classes: int) -> list[str]:
    """The trial record's class names, else GTSRB's when there are 43 classes, else the ids."""
    names = record.get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    return list(CLASS_NAMES) if num_classes == len(CLASS_NAMES) else [str(i) for i in range(num_classes)]


def extras(run: Run, data: Dataset | None, files: Path) -> list[Block]:
    """Per-class accuracy, the confusion matrix, the most-confused pairs and misclassified signs, from the
    main variant's predictions (the mean of its trials' logits when it has two or more) on the scored split."""
    from jaxadl import predict  # restores checkpoints: only where predictions are drawn

    blocks: list[Block] = [Heading("Beyond the original: where the baseline errs", 3)]
    split_name, split = run.scored(data)
    variant = run.main_variant()
    done = run.finished(variant) if variant else []
    if split is None or not done:
        reason = "no dataset was given to the report" if split is None else "no trial finished"
        return [*blocks, Paragraph(f"Left out: {reason}.")]
    if len(split) != done[0]["eval"]["accuracy"]["n"]:
        return [*blocks, Paragraph(f"Left out: the data given has {len(split)} {split_name} images, the run "
                                   f"scored {done[0]['eval']['accuracy']['n']}; not the same split.")]  # fmt: skip
    which = "all" if len(done) >= 2 else done[0]["trial"]
    predictor = predict.load(run.folder.root, variant, trial=which)
    batch = int(done[0]["train_config"].get("eval_batch_size", 500))
    logits = np.asarray(predictor.batch_logits(split.images, batch))
    predicted, labels = logits.argmax(-1), np.asarray(split.labels).astype(np.int64)
    num_classes = logits.shape[-1]
    names = class_names(done[0], num_classes)
    matrix = confusion(labels, predicted, num_classes)
    recorded = run.ensemble(variant) if which == "all" else done[0]
    model = (
        f"the mean of {variant}'s {len(done)} trials' logits"
        if which == "all"
        else f"{variant}, trial {which}"
    )
    score = float(np.mean(predicted == labels)) * 100
    blocks.append(Paragraph(
        f"Predictions of {model} on the {len(split)} {split_name} images. "
        + predictions_note(score, recorded["eval"]["accuracy"]["mean"] * 100 if recorded else None, _pct)
    ))  # fmt: skip
    blocks.append(_per_class(matrix, names, split_name))
    blocks += figure(
        plots_report.confusion_matrix(matrix, names, f"{model}: {split_name} confusion matrix", files / "cnn_confusion.png"),
        "cnn_confusion.png",
        f"Confusion matrix of {model} on the {split_name} split: rows the true class, columns the predicted "
        "class, log colour scale (blank: no image).",
    )  # fmt: skip
    blocks.append(_pairs(matrix, names, split_name))
    blocks += _gallery(split.images, labels, logits, names, files, model)
    return blocks


def _per_class(matrix: np.ndarray, names: list[str], split: str):
    counts, correct = matrix.sum(1), np.diag(matrix)
    rows = []
    for c in range(len(matrix)):
        wrong = matrix[c].copy()
        wrong[c] = 0
        mistaken = f"{names[int(wrong.argmax())]} ({int(wrong.max())})" if wrong.max() else "—"
        acc = _pct(100 * correct[c] / counts[c]) if counts[c] else "—"
        rows.append([str(c), names[c], str(int(counts[c])), str(int(correct[c])), acc, mistaken])
    columns = ["class", "name", f"{split} images", "correct", "accuracy", "most often taken for (images)"]
    return table(f"Per-class accuracy on the {split} split.", columns, rows)


def _pairs(matrix: np.ndarray, names: list[str], split: str):
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:PAIRS]
    rows = []
    for flat in order:
        true, pred = np.unravel_index(flat, off.shape)
        if off[true, pred] == 0:
            break
        share = _pct(100 * off[true, pred] / matrix[true].sum())
        rows.append([f"{true} {names[true]}", f"{pred} {names[pred]}", str(int(off[true, pred])), share])
    columns = ["true class", "predicted class", "images", "share of the true class"]
    return table(f"The {PAIRS} most-confused class pairs on the {split} split.", columns, rows or [["—"] * 4])


def _gallery(images, labels, logits, names, files: Path, model: str) -> list[Block]:
    predicted = logits.argmax(-1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return [Paragraph("No image of the split is misclassified: no gallery.")]
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    confidence = probs[np.arange(len(probs)), predicted]
    shown = wrong[np.argsort(-confidence[wrong], kind="stable")][:GALLERY]
    captions = [f"#{i} true: {names[labels[i]]} / predicted: {names[predicted[i]]} ({confidence[i]:.0%})"
                for i in shown]  # fmt: skip
    path = plots_report.gallery(
        images[shown], captions, f"{model}: most confident mistakes", files / "cnn_mistakes.png"
    )
    return figure(
        path,
        "cnn_mistakes.png",
        f"The {len(shown)} misclassified signs (of {len(wrong)}) the model was most sure of: image index, true "
        "and predicted class, and the predicted class's probability.",
    )

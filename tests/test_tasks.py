"""Task types: recorded in a run folder and rebuilt from it, including records from before the types."""

import numpy as np
import pytest

from jaxadl import Classification, Segmentation, report
from jaxadl.tasks import TASKS, from_record


@pytest.mark.parametrize(
    "task",
    [
        Classification(10, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), label_smoothing=0.1),
        Segmentation(dice_weight=1.0),
    ],
)
def test_a_task_is_rebuilt_from_its_record(task):
    record = task.to_record()
    assert record["type"] == task.kind and TASKS[task.kind] is type(task)
    assert from_record({k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}) == task


def test_records_from_before_the_task_types_still_load():
    both = {"num_classes": 1, "mean": [0.4], "std": [0.2], "label_smoothing": 0.0, "image_norm": True}
    old = {"kind": "segmentation", **both, "dice_weight": 1.0, "equalize": True}
    assert from_record(old) == Segmentation((0.4,), (0.2,), dice_weight=1.0, image_norm=True, equalize=True)
    old = {**old, "kind": "classification", "num_classes": 43, "dice_weight": 0.0, "label_smoothing": 0.1}
    assert from_record(old) == Classification(43, (0.4,), (0.2,), 0.1, image_norm=True, equalize=True)


def test_unknown_task_types_and_fields_are_errors():
    with pytest.raises(ValueError, match="unknown task type 'detection'"):
        from_record({"type": "detection"})
    with pytest.raises(TypeError):
        from_record({"type": "segmentation", "num_classes": 2})


def test_segmentation_from_given_logits_and_its_ensemble_row():
    from jaxadl.data.base import Split
    from jaxadl.saved_runs import summary as _summary

    masks = np.zeros((2, 8, 8, 1), np.uint8)
    masks[:, 2:6, 1:4] = 1  # a 4x3 lung
    masks[:, 2:6, 5:7] = 1  # and a 4x2 one
    logits = np.where(masks > 0, 3.0, -3.0).astype(np.float32)
    logits[0, 0, 0] = 3.0  # the first image has a stray pixel, which the clean-up removes
    logits[1, 2:6, 5:7] = -3.0  # the second misses its smaller lung: F1 = 2*12/(12+20) = 0.75
    split = Split(np.zeros((2, 8, 8, 1), np.uint8), masks)
    evaluation = Segmentation().evaluate_logits(logits, split, ["a", "b"])
    np.testing.assert_allclose(evaluation.per_example["f1"], [2 * 20 / (21 + 20), 0.75], rtol=1e-6)
    np.testing.assert_allclose(evaluation.per_example["f1_post"], [1.0, 0.75], rtol=1e-6)
    assert evaluation.record["per_image"]["cases"] == ["a", "b"]
    ensemble = {"variant": "ELU", "trials": [1, 2], "eval": _summary(evaluation)}
    trial = {"variant": "ELU", "trial": 1, "eval": _summary(evaluation), "best_epoch": 3}
    table = report.table(Segmentation(), [trial], "val", [ensemble])
    assert (
        "| ELU | mean of trials 1, 2 | 2 | 0.8628 | 0.1128 | 0.7500 | 0.8750 | 0.1250 | 0.7500 | — |" in table
    )
    assert "| ELU | 1 | 0.8628 |" in table.split("\n\n")[1]  # the summary counts the trials, not the ensemble


def test_the_hardest_image_figure_names_its_case(tmp_path, monkeypatch):
    from jaxadl import plots
    from jaxadl.data.base import Split

    masks = np.zeros((3, 8, 8, 1), np.uint8)
    masks[:, 2:6, 2:6] = 1
    logits = np.where(masks > 0, 3.0, -3.0).astype(np.float32)
    logits[1, 2:6, 2:4] = -3.0  # the second image misses half its mask: the hardest
    split = Split(np.zeros((3, 8, 8, 1), np.uint8), masks)
    drawn = {}
    monkeypatch.setattr(plots, "segmentation", lambda *a, **k: drawn.update(title=a[3], f1=k["f1"]))
    seg = Segmentation()
    figure = report.for_task(seg).example_figure
    figure(split, "val", seg.evaluate_logits(logits, split, ["c0", "JPCNN007", "c2"]), "t", tmp_path)
    assert drawn["title"] == "t: hardest val image #1 (JPCNN007)"
    assert drawn["f1"] == pytest.approx(2 * 8 / (8 + 16))
    figure(split, "val", seg.evaluate_logits(logits, split, ["0", "1", "2"]), "t", tmp_path)
    assert drawn["title"] == "t: hardest val image #1"  # cases without names: the index alone

"""Task types: recorded in a run folder and rebuilt from it, including records from before the types."""

import pytest

from jaxadl import Classification, Segmentation
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

"""The procedural traffic-sign dataset: contract, determinism, balance and (non-)triviality."""

from __future__ import annotations

import numpy as np
import pytest

from jaxadl.data.base import Dataset
from jaxadl.data.synthetic import CLASS_NAMES, NUM_CLASSES, class_templates, synthetic_signs


@pytest.fixture(scope="module")
def small() -> Dataset:
    return synthetic_signs(1290, 215, 860, seed=3)


def test_shapes_dtypes_and_meta(small: Dataset) -> None:
    assert small.name == "synthetic-signs"
    assert small.num_classes == NUM_CLASSES == 43 == len(CLASS_NAMES)
    for split, n in (("train", 1290), ("val", 215), ("test", 860)):
        s = small.splits()[split]
        assert s.images.shape == (n, 28, 28, 3) and s.images.dtype == np.uint8
        assert s.labels.shape == (n,) and s.labels.dtype == np.int32
    assert small.meta["class_names"] == list(CLASS_NAMES)


def test_labels_cover_all_classes_balanced(small: Dataset) -> None:
    for s in small.splits().values():
        counts = np.bincount(s.labels, minlength=NUM_CLASSES)
        assert len(counts) == NUM_CLASSES
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(small.train.labels[:43], np.arange(43))  # shuffled


def test_deterministic_per_seed() -> None:
    a = synthetic_signs(86, 43, 43, seed=7)
    b = synthetic_signs(86, 43, 43, seed=7)
    c = synthetic_signs(86, 43, 43, seed=8)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(a.splits()[name].images, b.splits()[name].images)
        np.testing.assert_array_equal(a.splits()[name].labels, b.splits()[name].labels)
        assert not np.array_equal(a.splits()[name].images, c.splits()[name].images)
    # Splits come from disjoint sub-seeds: equal sizes, different content.
    assert not np.array_equal(a.val.images, a.test.images)


def test_split_sizes_do_not_change_other_splits() -> None:
    a = synthetic_signs(43, 43, 43, seed=1)
    b = synthetic_signs(86, 0, 43, seed=1)
    assert b.val is None
    np.testing.assert_array_equal(a.test.images, b.test.images)


@pytest.mark.parametrize("size", [16, 32, 48])
def test_other_image_sizes(size: int) -> None:
    ds = synthetic_signs(43, 0, 0, image_size=size, seed=0)
    assert ds.train.images.shape == (43, size, size, 3)
    assert ds.val is None and ds.test is None
    assert ds.train.images.std() > 20


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        synthetic_signs(10, 0, 0, image_size=8)
    with pytest.raises(ValueError):
        synthetic_signs(-1)


def test_templates_are_distinct() -> None:
    t = class_templates(32)
    assert t.shape == (43, 32, 32, 4) and t.dtype == np.float32
    flat = t.reshape(43, -1)
    d = np.abs(flat[:, None] - flat[None]).mean(-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.002  # even the closest pairs (speed limits, "end of" signs) differ


def test_images_are_varied_and_use_the_range(small: Dataset) -> None:
    x = small.train.images
    per_image_std = x.reshape(len(x), -1).std(axis=1)
    assert per_image_std.min() > 5  # no constant images
    assert x.min() == 0 and x.max() == 255
    assert 60 < x.mean() < 190
    assert len(np.unique(x[:50])) > 200


def test_classes_distinguishable_but_not_trivially(small: Dataset) -> None:
    """A nearest-class-mean classifier on raw pixels beats chance clearly, yet stays far from perfect."""
    x = small.train.images.reshape(len(small.train), -1).astype(np.float32)
    means = np.stack([x[small.train.labels == k].mean(0) for k in range(NUM_CLASSES)])
    xt = small.test.images.reshape(len(small.test), -1).astype(np.float32)
    d = (xt**2).sum(1, keepdims=True) - 2 * xt @ means.T + (means**2).sum(1)
    acc = (d.argmin(1) == small.test.labels).mean()
    assert 2.5 / NUM_CLASSES < acc < 0.5, acc

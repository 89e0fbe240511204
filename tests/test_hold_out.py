"""hold_out_val and cross_val_fold: validation drawn from train when a dataset has none, or one fold of k."""

import numpy as np
import pytest

from jaxadl.data.base import Dataset, DatasetError, Split, cross_val_fold, hold_out_val


def _data(n=20, val=None):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    meta = {"cases": {"train": [f"c{i:02d}" for i in range(n)], "test": ["t"]}}
    return Dataset("d", Split(images, np.arange(n, dtype=np.int32)), val, None, 2, meta)


def test_draws_a_seeded_disjoint_validation_split():
    data = _data()
    out = hold_out_val(data, 0.1, seed=0)
    assert (len(out.train), len(out.val)) == (18, 2)
    together = np.sort(np.concatenate([out.train.images.ravel(), out.val.images.ravel()]))
    np.testing.assert_array_equal(together, np.arange(20))  # every example once
    np.testing.assert_array_equal(out.val.images.ravel(), out.val.labels)  # images and labels stay paired
    assert out.meta["cases"]["val"] == [f"c{int(i):02d}" for i in out.val.labels]
    assert out.meta["cases"]["test"] == ["t"]
    again = hold_out_val(data, 0.1, seed=0)
    np.testing.assert_array_equal(again.val.labels, out.val.labels)
    other = hold_out_val(data, 0.1, seed=1)
    assert not np.array_equal(other.val.labels, out.val.labels)
    assert data.val is None and len(data.train) == 20  # the input is not changed


def test_keeps_an_existing_split_and_fraction_zero():
    val = Split(np.zeros((3, 1, 1, 1), np.uint8), np.zeros(3, np.int32))
    data = _data(val=val)
    assert hold_out_val(data, 0.1, 0) is data
    assert hold_out_val(_data(), 0.0, 0).val is None
    assert len(hold_out_val(_data(3), 0.01, 0).val) == 1  # at least one
    with pytest.raises(DatasetError, match="cannot spare"):
        hold_out_val(_data(1), 0.5, 0)


def test_cross_validation_folds_validate_every_case_once_whatever_the_source_split():
    data = hold_out_val(_data(), 0.1, seed=3)  # 18 train + 2 val, named c00..c19
    seen = []
    for fold in range(3):
        out = cross_val_fold(data, 3, fold, seed=0)
        assert len(out.val) in (6, 7) and len(out.train) + len(out.val) == 20
        np.testing.assert_array_equal(out.val.images.ravel(), out.val.labels)  # images and labels stay paired
        assert out.meta["cases"]["val"] == [f"c{int(i):02d}" for i in out.val.labels]  # in name order
        assert out.meta["cases"]["train"] == [f"c{int(i):02d}" for i in out.train.labels]
        assert not set(out.meta["cases"]["val"]) & set(out.meta["cases"]["train"])
        assert out.meta["cross_validation"] == {"folds": 3, "fold": fold, "seed": 0}
        assert "val_from_train" not in out.meta and out.meta["cases"]["test"] == ["t"]
        seen += out.meta["cases"]["val"]
    assert sorted(seen) == [f"c{i:02d}" for i in range(20)]  # the folds partition the pool
    other_source = hold_out_val(_data(), 0.3, seed=9)  # another train/val split of the same cases
    assert (
        cross_val_fold(other_source, 3, 1, 0).meta["cases"]["val"]
        == cross_val_fold(data, 3, 1, 0).meta["cases"]["val"]
    )
    assert (
        cross_val_fold(data, 3, 1, 1).meta["cases"]["val"]
        != cross_val_fold(data, 3, 1, 0).meta["cases"]["val"]
    )


def test_cross_validation_rejects_impossible_folds():
    with pytest.raises(DatasetError, match="cannot make 21 folds"):
        cross_val_fold(_data(), 21, 0, 0)
    with pytest.raises(DatasetError, match="fold must be in 0..2, got 3"):
        cross_val_fold(_data(), 3, 3, 0)
    unnamed = Dataset(
        "d", Split(np.zeros((4, 1, 1, 1), np.uint8), np.arange(4, dtype=np.int32)), None, None, 2
    )
    out = cross_val_fold(unnamed, 2, 0, 0)
    assert len(out.val) == 2 and "cases" not in out.meta

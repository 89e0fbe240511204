"""hold_out_val: a validation split drawn from train when a dataset has none."""

import numpy as np
import pytest

from jaxadl.data.base import Dataset, DatasetError, Split, hold_out_val


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

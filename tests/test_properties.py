"""Property-based tests (hypothesis): shape arithmetic against the real models, cross-validation folds,
F1 of masks, and the mask clean-up's contract, each checked on drawn inputs against an independent rule.

Kept fast: models are only traced (jax.eval_shape compiles nothing), the device F1 sees one fixed shape, and
the rest is host-side numpy.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from jaxadl import SignCNN, UNet, metrics
from jaxadl.data import Dataset, Split, cross_val_fold
from jaxadl.postprocess import clean_mask, clean_masks, f1_masks
from jaxadl.shapes import conv_out, flatten_size, layer_table, pool_out

# tools/mutation.sh: every mutant sees the same examples, so a rerun gives the same verdicts
settings.register_profile("mutation", derandomize=True, database=None)
if os.environ.get("JAXADL_HYPOTHESIS_PROFILE") == "mutation":
    settings.load_profile("mutation")

FAST = settings(max_examples=40, deadline=None)
EIGHT = np.ones((3, 3), bool)  # 8-connected foreground regions, as the clean-up counts them


def _conv_outputs(model, shape):
    """Output shape of every flax module call of `model` on input `shape`, traced only (no compile)."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), variables, x
    )
    calls = {k: v["__call__"][0].shape for k, v in state["intermediates"].items() if k != "__call__"}
    return variables, out.shape, calls


# --- shape arithmetic (jaxadl.shapes) against the models' real shapes ---------------------------------------


@FAST
@given(size=st.integers(8, 80), channels=st.sampled_from([1, 3]))
def test_layer_table_is_the_sign_cnns_real_shapes(size, channels):
    model = SignCNN()
    try:
        rows = {r.name: r for r in layer_table(size, channels)}
    except ValueError:  # the arithmetic says the input is too small: the model cannot be built either
        with pytest.raises(Exception):  # noqa: B017 - flax fails with whatever a zero-size layer raises
            _conv_outputs(model, (1, size, size, channels))
        assert size < 16  # 16 -> 12 -> 8 -> 4 -> 2 -> 1 is the smallest input that works
        return
    variables, out, calls = _conv_outputs(model, (1, size, size, channels))
    for name in ("conv1", "conv2", "conv3"):
        assert (1, *rows[name].output) == calls[name]
        assert variables["params"][name]["kernel"].shape[2] == rows[name].input[2]
    assert rows["pool1"].output == rows["conv3"].input
    assert variables["params"]["fc"]["kernel"].shape == (flatten_size(size, channels), 43)
    assert out == (1, 43)


@FAST
@given(height=st.integers(16, 64), width=st.integers(16, 64))
def test_conv_and_pool_out_follow_the_cnn_on_rectangular_inputs(height, width):
    def side(n):
        n = conv_out(conv_out(n, 5), 5)
        return pool_out(conv_out(pool_out(n, 2), 3), 2)

    variables, _, calls = _conv_outputs(SignCNN(), (1, height, width, 3))
    assert calls["conv1"][1:3] == (conv_out(height, 5), conv_out(width, 5))
    assert variables["params"]["fc"]["kernel"].shape[0] == side(height) * side(width) * 32


@FAST
@given(
    depth=st.integers(1, 3),
    base=st.sampled_from([2, 4]),
    cells=st.tuples(st.integers(1, 5), st.integers(1, 5)),
)
def test_pool_and_same_conv_arithmetic_is_the_unets_real_shapes(depth, base, cells):
    height, width = (c * 2**depth for c in cells)
    sizes = [(height, width)]  # level l: the spatial size after l 2x2 pools
    for _ in range(depth):
        h, w = sizes[-1]
        sizes.append((pool_out(h, 2), pool_out(w, 2)))
    assert all(conv_out(n, 3, padding=1) == n for hw in sizes for n in hw)  # 3x3 SAME keeps the size
    _, out, calls = _conv_outputs(UNet(depth=depth, base_features=base), (1, height, width, 1))
    assert out == (1, height, width, 1)
    for shape in calls.values():
        if shape[-1] == 1:  # the final 1x1 convolution
            continue
        level = int(np.log2(shape[-1] // base))  # features double per level
        assert shape[1:3] == sizes[level], (shape, sizes)
    assert min(s[1] for s in calls.values()) == sizes[-1][0]  # the bottleneck is reached


# --- cross-validation folds ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 60),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    named=st.booleans(),
)
def test_folds_validate_every_case_exactly_once(n, data, seed, named):
    folds = data.draw(st.integers(2, n), label="folds")
    n_val = data.draw(st.integers(0, n - 1), label="source val size")
    labels = np.arange(n, dtype=np.int32)  # case i: image i, label i
    images = labels.astype(np.uint8).reshape(n, 1, 1, 1)
    names = [f"case{int(i):03d}" for i in data.draw(st.permutations(range(n)), label="names")]
    split = lambda idx: Split(images[idx], labels[idx])
    train_idx, val_idx = np.arange(n_val, n), np.arange(n_val)
    meta = {"cases": {"train": [names[i] for i in train_idx]}} if named else {}
    if named and n_val:
        meta["cases"]["val"] = [names[i] for i in val_idx]
    test = Split(np.zeros((1, 1, 1, 1), np.uint8), np.zeros(1, np.int32))
    dataset = Dataset("d", split(train_idx), split(val_idx) if n_val else None, test, n, meta)

    seen = []
    for fold in range(folds):
        out = cross_val_fold(dataset, folds, fold, seed)
        val, train = out.val.labels.tolist(), out.train.labels.tolist()
        np.testing.assert_array_equal(out.val.images.ravel(), out.val.labels)  # images stay with labels
        np.testing.assert_array_equal(out.train.images.ravel(), out.train.labels)
        assert sorted(val + train) == list(range(n))  # a partition of the pool
        assert out.test is test
        if named:
            assert out.meta["cases"]["val"] == [names[i] for i in val]
            assert out.meta["cases"]["val"] == sorted(out.meta["cases"]["val"])  # in name order
        seen.append(val)
    assert sorted(c for v in seen for c in v) == list(range(n))  # every case validated exactly once
    sizes = [len(v) for v in seen]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1  # near-equal folds


# --- F1 of masks ------------------------------------------------------------------------------------------

MASKS = arrays(np.bool_, st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)))
DEVICE_SHAPE = (3, 6, 6, 1)  # one shape for the device metric: compiled once
DEVICE_MASKS = arrays(np.bool_, DEVICE_SHAPE)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_f1_of_a_mask_with_itself_is_one_and_f1_is_symmetric(data):
    a = data.draw(MASKS, label="a")
    b = data.draw(arrays(np.bool_, a.shape), label="b")
    np.testing.assert_array_equal(f1_masks(a, a), np.ones(len(a)))
    np.testing.assert_array_equal(f1_masks(a, b), f1_masks(b, a))
    f1 = f1_masks(a, b)
    assert np.all((f1 >= 0) & (f1 <= 1))
    overlap = (a & b).reshape(len(a), -1).any(1)
    either = (a | b).reshape(len(a), -1).any(1)
    np.testing.assert_array_equal(f1 == 0, either & ~overlap)  # 0 exactly when something is all wrong


@settings(max_examples=30, deadline=None)
@given(a=DEVICE_MASKS, b=DEVICE_MASKS)
def test_device_f1_of_a_mask_with_itself_is_one_and_is_symmetric(a, b):
    logits = lambda m: jnp.asarray(np.where(m, 3.0, -3.0), jnp.float32)
    f1 = lambda p, t: np.asarray(metrics.f1_per_image(logits(p), jnp.asarray(t, jnp.uint8)))
    np.testing.assert_array_equal(f1(a, a), np.ones(len(a)))
    np.testing.assert_allclose(f1(a, b), f1(b, a), rtol=1e-6)
    np.testing.assert_allclose(f1(a, b), f1_masks(a, b), rtol=1e-6)  # the host and device metrics agree


# --- the mask clean-up (largest regions kept, holes filled) ----------------------------------------------


def _holes(mask: np.ndarray) -> np.ndarray:
    """Background pixels not connected to the border (4-connected background, as binary_fill_holes)."""
    labels, _ = ndimage.label(~mask)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return (labels > 0) & ~np.isin(labels, border)


RAW = arrays(np.bool_, st.tuples(st.integers(1, 14), st.integers(1, 14)))


@settings(max_examples=150, deadline=None)
@given(raw=RAW, keep=st.integers(1, 3))
def test_clean_mask_keeps_the_largest_regions_whole_and_only_fills_holes(raw, keep):
    out = clean_mask(raw, keep)
    assert out.dtype == bool and out.shape == raw.shape
    # foreground is gained only inside the raw mask's holes
    assert not (out & ~raw & ~_holes(raw)).any()
    # the raw regions come through whole or not at all: at most `keep` of them, none smaller than one dropped
    labels, count = ndimage.label(raw, EIGHT)
    sizes = np.bincount(labels.ravel())[1:]
    kept = [r for r in range(1, count + 1) if out[labels == r].all()]
    dropped = [r for r in range(1, count + 1) if not out[labels == r].any()]
    assert len(kept) + len(dropped) == count
    assert len(kept) == min(count, keep)
    if kept and dropped:
        assert sizes[np.array(kept) - 1].min() >= sizes[np.array(dropped) - 1].max()
    # the result is the kept regions with their holes filled: no other pixel, no hole left
    kept_mask = np.isin(labels, kept)
    np.testing.assert_array_equal(out, kept_mask | _holes(kept_mask))
    assert ndimage.label(out, EIGHT)[1] <= keep and not _holes(out).any()
    np.testing.assert_array_equal(clean_mask(out, keep), out)  # cleaning twice changes nothing


@settings(max_examples=30, deadline=None)
@given(batch=arrays(np.bool_, st.tuples(st.integers(0, 3), st.integers(1, 8), st.integers(1, 8))))
def test_clean_masks_is_clean_mask_per_image_with_or_without_a_channel(batch):
    for masks in (batch, batch[..., None]):
        out = clean_masks(masks)
        assert out.shape == masks.shape and out.dtype == bool
        for image, cleaned in zip(masks, out, strict=True):
            np.testing.assert_array_equal(cleaned, clean_mask(image))

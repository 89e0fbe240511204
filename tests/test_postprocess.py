"""Mask clean-up (largest regions, holes filled) and host-side per-image F1 against an independent count."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from jaxadl import metrics
from jaxadl.postprocess import clean_mask, clean_masks, f1_masks


def _two_lungs_with_debris() -> np.ndarray:
    m = np.zeros((32, 32), bool)
    m[4:28, 3:13] = True  # left lung, 240 px
    m[4:26, 18:29] = True  # right lung, 242 px
    m[10:14, 6:9] = False  # a hole inside the left lung
    m[0:2, 30:32] = True  # a stray blob, 4 px
    m[30, 0] = True  # a single pixel
    return m


def test_clean_mask_keeps_two_largest_and_fills_holes():
    m = _two_lungs_with_debris()
    out = clean_mask(m)
    assert out.dtype == bool and out.shape == m.shape
    assert not out[0:2, 30:32].any() and not out[30, 0]  # debris removed
    assert out[10:14, 6:9].all()  # hole filled
    expected = np.zeros_like(m)
    expected[4:28, 3:13] = True
    expected[4:26, 18:29] = True
    np.testing.assert_array_equal(out, expected)
    assert clean_mask(m, keep=1).sum() == 242  # the right lung alone (hole-free, larger)
    assert clean_mask(m[..., None]).shape == (32, 32, 1)
    assert not clean_mask(np.zeros((8, 8), bool)).any()


def test_clean_mask_counts_diagonal_neighbours_as_one_region():
    m = np.zeros((10, 10), bool)
    m[2, 2] = m[3, 3] = m[4, 4] = True  # 8-connected: one region of 3
    m[8, 0] = True
    m[0, 8] = True
    assert clean_mask(m, keep=1).sum() == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_masks_matches_sklearn_and_the_device_metric(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((6, 16, 16)) < rng.uniform(0.05, 0.6, (6, 1, 1))
    pred = rng.random((6, 16, 16)) < 0.3
    truth[0], pred[0] = False, False  # empty truth, empty prediction: 1
    truth[1], pred[1] = False, True  # empty truth, something predicted: 0
    truth[2], pred[2] = True, False  # a mask missed entirely: 0
    ours = f1_masks(pred, truth)
    independent = [
        f1_score(t.ravel(), p.ravel(), zero_division=1.0) for t, p in zip(truth, pred, strict=True)
    ]
    np.testing.assert_allclose(ours, independent, atol=1e-12)
    assert ours[:3].tolist() == [1.0, 0.0, 0.0]
    # The device metric thresholds logits at probability 0.5 (logit 0) and agrees.
    logits = np.where(pred, 2.0, -2.0)[..., None].astype(np.float32)
    device = np.asarray(metrics.f1_per_image(logits, truth[..., None].astype(np.uint8)))
    np.testing.assert_allclose(device, independent, atol=1e-6)


def test_clean_masks_batch():
    batch = np.stack([_two_lungs_with_debris(), np.zeros((32, 32), bool)])
    out = clean_masks(batch)
    assert out.shape == batch.shape and out[0].sum() == 482 and not out[1].any()


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_device_f1_thresholds_the_probability_exactly(threshold):
    """Logits within 0.01 of the threshold's logit: one off-by-threshold error shows against sklearn."""
    rng = np.random.default_rng(3)
    at = np.log(threshold / (1 - threshold))
    logits = (at + rng.uniform(-0.01, 0.01, (5, 16, 16))).astype(np.float32)
    logits[0, 0, :4] = at  # exactly at the threshold: probability not above it, so background
    truth = rng.random((5, 16, 16)) < 0.5
    pred = 1 / (1 + np.exp(-logits.astype(np.float64))) > threshold
    pred[0, 0, :4] = False
    expected = [f1_score(t.ravel(), p.ravel(), zero_division=1.0) for t, p in zip(truth, pred, strict=True)]
    device = metrics.f1_per_image(logits[..., None], truth[..., None].astype(np.uint8), threshold=threshold)
    np.testing.assert_allclose(np.asarray(device), expected, atol=1e-6)


def test_summary_std_is_the_population_std_as_in_the_report():
    s = metrics.summarize(np.array([0.9, 1.0]))
    assert s == {"mean": pytest.approx(0.95), "std": pytest.approx(0.05), "min": 0.9, "max": 1.0, "n": 2}
    assert np.isnan(metrics.summarize(np.array([]))["mean"])

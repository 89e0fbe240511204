"""Value-asserting tests written against the mutants that survived the mutation campaign (docs/testing.md):
each expected number is worked out by hand or with numpy beside the test, never by the code under test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxadl import Classification, Segmentation, metrics, report
from jaxadl.augment import AugmentConfig, _pose, _warp, augment
from jaxadl.data.base import Dataset, DatasetError, Split, cross_val_fold, hold_out_val
from jaxadl.optim import OptimConfig, learning_rate_schedule, make_optimizer, rprop
from jaxadl.postprocess import clean_masks, f1_masks
from jaxadl.shapes import conv_out, format_table, layer_table, pool_out
from jaxadl.tasks import equalize


def _data(n, names=None, val=None):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    meta = {"cases": {"train": names}} if names is not None else {}
    return Dataset("d", Split(images, np.arange(n, dtype=np.int32)), val, None, 2, meta)


# --- jaxadl/augment.py -----------------------------------------------------------------------------------


def test_warp_samples_at_matrix_times_row_col_plus_offset():
    image = jnp.arange(4 * 5, dtype=jnp.float32).reshape(4, 5, 1)  # not square, no symmetry
    down = _warp(
        image, jnp.eye(2), jnp.array([1.0, 0.0])
    )  # out[i, j] = image[i + 1, j], the last row repeated
    np.testing.assert_allclose(down[..., 0], np.asarray(image[..., 0])[[1, 2, 3, 3]], atol=1e-5)
    right = _warp(image, jnp.eye(2), jnp.array([0.0, -0.5]))  # halfway to the left neighbour (bilinear)
    expected = np.asarray(image[..., 0]) - 0.5
    expected[:, 0] = np.asarray(image[:, 0, 0])  # the edge is repeated
    np.testing.assert_allclose(right[..., 0], expected, atol=1e-5)
    swap = _warp(image[:4, :4], jnp.array([[0.0, 1.0], [1.0, 0.0]]), jnp.zeros(2))  # (y, x) -> (x, y)
    np.testing.assert_allclose(swap[..., 0], np.asarray(image[:4, :4, 0]).T, atol=1e-5)


def _uniform(key, shape, low, high):
    return np.asarray(jax.random.uniform(key, shape, minval=low, maxval=high), np.float64)


def _reference_pose(key, cfg, h, w):
    """The documented draws (angle, zoom, shift from key's three parts) and the inverse map they make."""
    k1, k2, k3 = jax.random.split(key, 3)
    angle = np.deg2rad(_uniform(k1, (), -cfg.rotate_deg, cfg.rotate_deg))
    zoom = _uniform(k2, (), 1 - cfg.scale, 1 + cfg.scale)
    shift = _uniform(k3, (2,), -cfg.translate_px, cfg.translate_px)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    matrix = (
        rotation / zoom
    )  # output pixel -> input pixel: the content is rotated and zoomed about the centre
    return matrix, centre - matrix @ centre - shift


def _reference_augment(key, images, labels, cfg):
    """augment() in numpy and scipy: warp (bilinear, edges repeated), gamma, shading, contrast, brightness."""
    x, y = np.asarray(images, np.float64), np.asarray(labels)
    b, h, w, c = x.shape
    keys = jax.random.split(key, 3)
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    warp = lambda img, m, o: np.stack(
        [
            ndimage.map_coordinates(
                img[..., i], np.einsum("ij,jhw->ihw", m, grid) + o[:, None, None], order=1, mode="nearest"
            )
            for i in range(img.shape[-1])
        ],
        -1,
    )
    for i, k in enumerate(jax.random.split(keys[0], b)):
        m, o = _reference_pose(k, cfg, h, w)
        x[i] = warp(x[i], m, o)
        y[i] = warp(y[i].astype(np.float64), m, o) > 0.5
    x = np.clip(x, 0, 1) ** np.exp(_uniform(jax.random.fold_in(key, 3), (b, 1, 1, 1), -cfg.gamma, cfg.gamma))
    grid4 = jax.random.uniform(
        jax.random.fold_in(key, 4), (b, 4, 4, 1), minval=-cfg.shading, maxval=cfg.shading
    )
    x = x + np.asarray(jax.image.resize(grid4, (b, h, w, 1), method="cubic"), np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * _uniform(keys[1], (b, 1, 1, 1), 1 - cfg.contrast, 1 + cfg.contrast) + mean
    x = x + _uniform(keys[2], (b, 1, 1, 1), -cfg.brightness, cfg.brightness)
    return np.clip(x, 0, 1), y


def test_pose_rotates_and_zooms_about_the_centre_then_shifts():
    cfg = AugmentConfig(rotate_deg=30.0, translate_px=3.0, scale=0.3)
    for seed in range(4):
        key = jax.random.key(seed)
        matrix, offset = _pose(key, cfg, 9, 14)
        expected_matrix, expected_offset = _reference_pose(key, cfg, 9, 14)
        np.testing.assert_allclose(matrix, expected_matrix, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(offset, expected_offset, rtol=1e-5, atol=1e-5)


def test_pose_draws_cover_their_ranges():
    cfg = AugmentConfig(rotate_deg=30.0, translate_px=3.0, scale=0.3)
    matrices, offsets = jax.vmap(lambda k: _pose(k, cfg, 9, 9))(jax.random.split(jax.random.key(0), 200))
    matrices, offsets = np.asarray(matrices, np.float64), np.asarray(offsets, np.float64)
    zoom = 1 / np.hypot(matrices[:, 0, 0], matrices[:, 1, 0])
    angle = np.degrees(np.arctan2(matrices[:, 1, 0], matrices[:, 0, 0]))
    assert 0.7 <= zoom.min() < 0.75 and 1.25 < zoom.max() <= 1.3
    assert -30 <= angle.min() < -25 and 25 < angle.max() <= 30
    shift = np.einsum("nij,j->ni", matrices, [4.0, 4.0]) + offsets - 4.0  # centre's image minus the centre
    assert -3 <= shift.min() < -2.5 and 2.5 < shift.max() <= 3
    assert np.corrcoef(shift[:, 0], shift[:, 1])[0, 1] < 0.5  # two independent shifts


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_is_warp_gamma_shading_contrast_brightness_in_that_order(channels):
    cfg = AugmentConfig(
        rotate_deg=20.0, translate_px=1.5, scale=0.2, brightness=0.1, contrast=0.3, gamma=0.3, shading=0.1
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, 7, 9, channels)).astype(np.float32)
    masks = (rng.uniform(0, 1, (3, 7, 9, 1)) < 0.5).astype(np.uint8)
    key = jax.random.key(7)
    out, out_masks = augment(key, jnp.asarray(images), jnp.asarray(masks), cfg)
    expected, expected_masks = _reference_augment(key, images, masks, cfg)
    assert out.shape == images.shape
    np.testing.assert_allclose(out, expected, atol=2e-5)
    assert out_masks.dtype == jnp.uint8
    np.testing.assert_array_equal(out_masks, expected_masks)


@pytest.mark.parametrize("name", ["scale", "contrast"])
def test_augment_config_refuses_a_scale_or_contrast_of_one(name):
    with pytest.raises(ValueError, match=f"{name} must be < 1, got 1.0"):
        AugmentConfig(**{name: 1.0})


# --- jaxadl/data/base.py ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [1.0, 1.5])
def test_hold_out_val_refuses_a_fraction_of_one_or_more(fraction):
    with pytest.raises(DatasetError, match=r"val_fraction must be in \[0, 1\)"):
        hold_out_val(_data(10), fraction, 0)


def test_hold_out_val_leaves_one_training_example_and_records_how_it_split():
    out = hold_out_val(_data(3), 0.9, seed=4)  # round(2.7) = 3 would take all: 2 go, 1 stays
    assert (len(out.train), len(out.val)) == (1, 2)
    assert out.meta["val_from_train"] == {"fraction": 0.9, "seed": 4}
    assert (len(hold_out_val(_data(2), 0.5, 0).train), len(hold_out_val(_data(2), 0.5, 0).val)) == (1, 1)


def test_hold_out_val_leaves_case_names_alone_when_they_do_not_name_the_training_examples():
    names = ["a", "b", "c"]  # 3 names for 8 examples: not the training cases
    out = hold_out_val(_data(8, names), 0.25, seed=1)
    assert out.meta["cases"] == {"train": ["a", "b", "c"]} and len(out.val) == 2


def test_cross_val_fold_allows_one_case_per_fold():
    seen = sorted(int(cross_val_fold(_data(5), 5, f, seed=2).val.labels[0]) for f in range(5))
    assert seen == [0, 1, 2, 3, 4]


def test_cases_with_the_same_name_keep_their_pool_order():
    """Ties in the name order are broken by the pool order (a stable sort): here, no reordering at all."""
    n = 20
    for fold in range(3):
        named = cross_val_fold(_data(n, ["x"] * n), 3, fold, seed=5)
        plain = cross_val_fold(_data(n), 3, fold, seed=5)
        np.testing.assert_array_equal(named.val.labels, plain.val.labels)


# --- jaxadl/metrics.py ------------------------------------------------------------------------------------


def test_summarize_adds_float32_values_in_float64():
    s = metrics.summarize(np.array([1e8, 1.0, -1e8, 2.0], np.float32))  # float32 sums lose the 1: 0.5
    assert s["mean"] == 0.75 and s["n"] == 4 and s["min"] == -1e8 and s["max"] == 1e8
    deviations = np.array([1e8 - 0.75, 1.0 - 0.75, -1e8 - 0.75, 2.0 - 0.75])
    assert s["std"] == pytest.approx(np.sqrt((deviations**2).mean()), rel=1e-12)


def test_summarize_of_nothing_has_every_key():
    s = metrics.summarize(np.array([]))
    assert sorted(s) == ["max", "mean", "min", "n", "std"] and s["n"] == 0
    assert all(np.isnan(s[k]) for k in ("mean", "std", "min", "max"))


# --- jaxadl/optim.py --------------------------------------------------------------------------------------


def test_rprop_defaults_first_step_growth_and_floor():
    tx = rprop()
    params = jnp.zeros(1)
    state = tx.init(params)
    updates, state = tx.update(jnp.array([3.0]), state)
    np.testing.assert_allclose(updates, [-0.01], rtol=1e-6)  # learning_rate 0.01
    updates, state = tx.update(jnp.array([3.0]), state)
    np.testing.assert_allclose(updates, [-0.012], rtol=1e-6)  # eta_plus 1.2
    for i in range(40):  # a flip every other step halves the step: 0.012 / 2**14 < 1e-6
        _, state = tx.update(jnp.array([-3.0 if i % 2 == 0 else 3.0]), state)
    np.testing.assert_allclose(state.step_sizes, [1e-6], rtol=1e-6)  # min_step_size 1e-6


def test_rprop_step_stops_growing_at_50():
    tx = make_optimizer(OptimConfig("rprop", 40.0))  # eta_plus 1.2: 40, 48, then 57.6 capped at 50
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    steps = []
    for _ in range(4):
        updates, state = tx.update({"w": jnp.ones(1)}, state, params)
        steps.append(float(updates["w"][0]))
    np.testing.assert_allclose(steps, [-40.0, -48.0, -50.0, -50.0], rtol=1e-6)


def test_rprop_eta_minus_must_be_above_zero():
    with pytest.raises(ValueError, match=r"eta_minus must be in \(0, 1\), got 0.0"):
        OptimConfig(eta_minus=0.0)


def _first_update(cfg, params, grads):
    tx = make_optimizer(cfg, total_steps=10)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_adam_first_step_is_the_learning_rate_against_the_gradient_sign():
    params = {"w": jnp.zeros(2)}
    updates = _first_update(OptimConfig("adam", 0.1), params, {"w": jnp.array([2.0, -0.5])})
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1], rtol=1e-4)  # sgd would give -0.2, 0.05


def test_adamw_decays_kernels_only_and_by_the_configured_amount():
    params = {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([1.0])}
    grads = {"kernel": jnp.array([[0.5, 0.5]]), "bias": jnp.array([0.5])}
    updates = _first_update(OptimConfig("adam", 0.1, weight_decay=0.5), params, grads)
    # -lr * (sign(g) + wd * w) on the kernel: -0.1 * (1 + 0.5), -0.1 * (1 - 1); the bias: -0.1 * 1
    np.testing.assert_allclose(updates["kernel"], [[-0.15, 0.0]], atol=1e-5)  # float32 bias correction
    np.testing.assert_allclose(updates["bias"], [-0.1], rtol=1e-4)


def test_gradient_clipping_by_global_norm():
    params = {"w": jnp.zeros(2)}
    grads = {"w": jnp.array([3.0, 4.0])}  # norm 5, clipped to 0.5
    updates = _first_update(OptimConfig("sgd", 1.0, grad_clip=0.5), params, grads)
    np.testing.assert_allclose(updates["w"], [-0.3, -0.4], rtol=1e-6)
    np.testing.assert_allclose(_first_update(OptimConfig("sgd", 1.0), params, grads)["w"], [-3.0, -4.0])


def test_onecycle_ends_at_lr_over_25_000_and_warms_up_at_least_one_step():
    sched = learning_rate_schedule(OptimConfig("adam", 2e-3, schedule="onecycle", warmup_fraction=0.2), 100)
    assert float(sched(100)) == pytest.approx(2e-3 / 25 / 1e3, rel=1e-5)
    short = learning_rate_schedule(OptimConfig("adam", 1.0, schedule="onecycle", warmup_fraction=0.2), 5)
    assert float(short(0)) == pytest.approx(1 / 25, rel=1e-5) and float(short(1)) == pytest.approx(1.0)


def test_cosine_ends_at_a_thousandth_of_lr_even_for_one_step():
    sched = learning_rate_schedule(OptimConfig("sgd", 0.1, schedule="cosine", warmup_fraction=0.1), 50)
    assert float(sched(50)) == pytest.approx(1e-4, rel=1e-5)
    one = learning_rate_schedule(OptimConfig("sgd", 1.0, schedule="cosine"), 1)  # warm-up 1, decay 1
    np.testing.assert_allclose([float(one(i)) for i in range(3)], [0.0, 1.0, 1e-3], rtol=1e-5)


# --- jaxadl/postprocess.py --------------------------------------------------------------------------------


def test_f1_masks_reads_0_255_masks_as_binary():
    pred = np.array([[True, True, False, False]])
    truth = np.array([[255, 0, 255, 0]], np.uint8)  # one hit, one miss each way: F1 = 2*1/(2+2)
    np.testing.assert_array_equal(f1_masks(pred, truth), [0.5])
    np.testing.assert_array_equal(f1_masks(truth, pred), [0.5])


def test_f1_masks_one_stray_pixel_on_an_empty_truth_scores_zero():
    pred = np.zeros((2, 3, 3), bool)
    pred[0, 1, 1] = True
    np.testing.assert_array_equal(f1_masks(pred, np.zeros((2, 3, 3), bool)), [0.0, 1.0])


def test_device_f1_one_stray_pixel_on_an_empty_truth_scores_zero():
    logits = np.full((2, 3, 3, 1), -4.0, np.float32)
    logits[0, 1, 1] = 4.0
    f1 = metrics.f1_per_image(jnp.asarray(logits), jnp.zeros((2, 3, 3, 1), jnp.uint8))
    np.testing.assert_array_equal(np.asarray(f1), [0.0, 1.0])


def test_clean_masks_of_an_empty_batch_and_with_one_region_kept():
    empty = clean_masks(np.zeros((0, 4, 4), np.uint8))
    assert empty.shape == (0, 4, 4) and empty.dtype == bool
    masks = np.zeros((1, 5, 5), bool)
    masks[0, 0, :3] = True  # 3 px
    masks[0, 4, :2] = True  # 2 px
    np.testing.assert_array_equal(clean_masks(masks, keep=1)[0].sum(), 3)
    np.testing.assert_array_equal(clean_masks(masks)[0].sum(), 5)


# --- jaxadl/shapes.py -------------------------------------------------------------------------------------


def test_an_output_of_one_pixel_is_allowed_and_pool_padding_counts():
    assert conv_out(5, 5) == 1 and pool_out(3, 2) == 1
    assert pool_out(6, 2, padding=1) == 4  # (6 + 2 - 2) // 2 + 1
    assert [r.output for r in layer_table()] == [r.output for r in layer_table(28, 3)]


def test_format_table_defaults_and_channels():
    assert format_table() == str(layer_table(28, 3))
    lines = format_table().splitlines()
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| conv1 | 28×28×3 | 5×5 | 1 | 0 | 24×24×64 |"
    assert "| conv1 | 32×32×1 | 5×5 | 1 | 0 | 28×28×64 |" in format_table(32, 1)


# --- jaxadl/tasks.py --------------------------------------------------------------------------------------


def test_equalize_bins_levels_per_image():
    x = np.array(
        [
            [0.5, 0.5 + 0.9 / 256, 0.1, 1.0],  # levels 128, 128, 25, 255 (1.0 is clipped into the top level)
            [254.5 / 256, 255.5 / 256, 0.0, 0.0],  # levels 254, 255, 0, 0
        ],
        np.float32,
    ).reshape(2, 2, 2, 1)
    out = equalize(jnp.asarray(x))
    np.testing.assert_array_equal(
        np.asarray(out).reshape(2, 4), [[0.75, 0.75, 0.25, 1.0], [0.75, 1.0, 0.5, 0.5]]
    )
    assert equalize(jnp.asarray(x, jnp.float16)).dtype == jnp.float16  # the input's dtype


def test_inputs_scale_uint8_to_0_1_then_by_the_channel_statistics():
    images = jnp.asarray(np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1))
    np.testing.assert_allclose(
        np.asarray(Classification().inputs(images)).ravel(), [0.0, 0.2, 1.0], rtol=1e-6
    )
    task = Segmentation(mean=(0.5,), std=(0.25,))
    np.testing.assert_allclose(np.asarray(task.inputs(images)).ravel(), [-2.0, -1.2, 2.0], rtol=1e-6)


def test_classification_chance_level_is_the_majority_share():
    task = Classification(num_classes=6)
    assert report.for_task(task).chance_level(np.array([0, 2, 2, 5, 2, 1])) == 0.5
    assert report.for_task(task).chance_level(np.array([[1, 1], [0, 1]])) == 0.75
    assert report.for_task(task).chance_level(np.array([3])) == 1.0


def test_segmentation_chance_level_is_the_mean_f1_of_an_all_foreground_guess():
    masks = np.zeros((3, 2, 2, 1), np.uint8)
    masks[0, 0, 0] = 1  # p = 1/4: F1 = 2p / (1 + p) = 0.4
    masks[2] = 255  # all foreground: 1; image 1 empty: 0
    assert report.for_task(Segmentation()).chance_level(masks) == pytest.approx(1.4 / 3, abs=1e-12)


@pytest.mark.parametrize("task", [Classification(), Segmentation()])
def test_chance_level_of_no_labels(task):
    """No labels score 0 (np.bincount([]).max() and reshaping an empty array to (0, -1) would raise)."""
    assert report.for_task(task).chance_level(np.zeros((0, 2, 2, 1), np.uint8)) == 0.0


def _bce(x, y):
    return np.where(y == 1, np.log1p(np.exp(-x)), np.log1p(np.exp(x)))


LOGITS = np.array([[-2.0, 0.5, 1.5, -0.25], [3.0, -1.0, 0.0, 2.0]], np.float32).reshape(2, 2, 2, 1)
MASKS = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], np.uint8).reshape(2, 2, 2, 1)


def test_segmentation_loss_is_per_image_bce_plus_weighted_soft_dice():
    x, y = LOGITS.reshape(2, -1).astype(np.float64), MASKS.reshape(2, -1).astype(np.float64)
    bce = _bce(x, y).mean(1)
    p = 1 / (1 + np.exp(-x))
    dice = (2 * (p * y).sum(1) + 1) / (p.sum(1) + y.sum(1) + 1)
    got = Segmentation(dice_weight=0.5).loss(jnp.asarray(LOGITS), jnp.asarray(MASKS))
    np.testing.assert_allclose(got, bce + 0.5 * (1 - dice), rtol=1e-5)
    np.testing.assert_allclose(Segmentation().loss(jnp.asarray(LOGITS), jnp.asarray(MASKS)), bce, rtol=1e-5)


def test_segmentation_metrics_are_per_image_bce_and_f1():
    x, y = LOGITS.reshape(2, -1).astype(np.float64), MASKS.reshape(2, -1)
    got = Segmentation(dice_weight=1.0).metrics(jnp.asarray(LOGITS), jnp.asarray(MASKS))
    assert sorted(got) == ["f1", "loss"]
    np.testing.assert_allclose(got["loss"], _bce(x, y).mean(1), rtol=1e-5)  # no Dice in the evaluated loss
    # image 0: predicted {1, 2} (logit > 0) against {0, 2, 3}: F1 = 2/5; image 1: {0, 3} against {2}: 0
    np.testing.assert_allclose(got["f1"], [0.4, 0.0], rtol=1e-6)


def test_classification_loss_smooths_labels_and_metrics_do_not():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    labels = np.array([0, 1])
    log_p = logits - np.log(np.exp(logits.astype(np.float64)).sum(1, keepdims=True))
    onehot = np.eye(3)[labels]
    smooth = 0.9 * onehot + 0.1 / 3
    task = Classification(num_classes=3, label_smoothing=0.1)
    np.testing.assert_allclose(
        task.loss(jnp.asarray(logits), jnp.asarray(labels)), -(smooth * log_p).sum(1), rtol=1e-5
    )
    got = task.metrics(jnp.asarray(logits), jnp.asarray(labels))
    assert sorted(got) == ["accuracy", "loss"]
    np.testing.assert_allclose(got["loss"], -(onehot * log_p).sum(1), rtol=1e-5)
    np.testing.assert_array_equal(got["accuracy"], [1.0, 0.0])

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadl import AugmentConfig, Classification, OptimConfig, SignCNN, TrainConfig, Trainer, fit
from jaxadl.augment import augment
from tests.helpers import colour_squares

TRAIN = colour_squares(640, seed=0)
VAL = colour_squares(200, seed=1)
TASK = Classification(num_classes=10)


def _model(bn=False):
    return SignCNN(num_classes=10, batch_norm=bn)


@pytest.mark.parametrize(
    "name,optim,extra",
    [
        ("adam", OptimConfig("adam", 2e-3), {}),
        pytest.param(
            "sgd", OptimConfig("sgd", 0.003, momentum=0.9, nesterov=True), {}, marks=pytest.mark.slow
        ),
        pytest.param(
            "rprop-full-batch",
            OptimConfig("rprop", 1e-3),
            {"full_batch": True, "epochs": 12},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_short_training_learns(name, optim, extra):
    cfg = TrainConfig(**{"epochs": 4, "batch_size": 32, "optim": optim, "eval_batch_size": 100, **extra})
    train = TRAIN if not cfg.full_batch else colour_squares(320, seed=0)
    result = fit(_model(), TASK, train, cfg, VAL)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert result.history[-1]["val_accuracy"] > 0.5, result.history  # chance is 0.1


@pytest.mark.slow
def test_batch_norm_training_learns_and_keeps_stats():
    cfg = TrainConfig(epochs=3, batch_size=32, optim=OptimConfig("adam", 2e-3), eval_batch_size=100)
    trainer = Trainer(_model(bn=True), TASK, cfg, len(TRAIN))
    before = trainer.init(TRAIN.images.shape[1:])
    result = fit(_model(bn=True), TASK, TRAIN, cfg, VAL, trainer=trainer)
    assert result.history[-1]["val_accuracy"] > 0.5
    mean_before = before.batch_stats["bn1"]["mean"]
    assert not np.allclose(result.state.batch_stats["bn1"]["mean"], mean_before)


@pytest.mark.slow
def test_same_seed_same_numbers_and_other_seed_differs():
    cfg = TrainConfig(
        epochs=2, batch_size=64, optim=OptimConfig("adam", 1e-3), eval_batch_size=100, augment=AugmentConfig()
    )
    small = colour_squares(200)
    a = fit(_model(), TASK, small, cfg)
    b = fit(_model(), TASK, small, cfg)
    c = fit(_model(), TASK, small, dataclasses.replace(cfg, seed=1))
    np.testing.assert_array_equal(a.step_losses, b.step_losses)
    assert not np.array_equal(a.step_losses, c.step_losses)
    assert len(a.step_losses) == 2 * (200 // 64)  # the ragged last batch is dropped


def test_scanned_epoch_equals_loop_epoch():
    # a scanned epoch is slow on XLA:CPU (see Trainer._loop_epoch), so this one is tiny
    cfg = TrainConfig(epochs=1, batch_size=16, optim=OptimConfig("adam", 1e-3), eval_batch_size=100)
    small = colour_squares(48)
    a = fit(_model(), TASK, small, cfg, trainer=Trainer(_model(), TASK, cfg, len(small), scan=True))
    b = fit(_model(), TASK, small, cfg, trainer=Trainer(_model(), TASK, cfg, len(small), scan=False))
    np.testing.assert_allclose(a.step_losses, b.step_losses, rtol=1e-5)


def test_evaluation_is_padded_and_masked():
    cfg = TrainConfig(epochs=1, batch_size=64, eval_batch_size=64)
    trainer = Trainer(_model(), TASK, cfg, len(TRAIN))
    state = trainer.init(TRAIN.images.shape[1:])
    out = trainer.evaluate(state, VAL)  # 200 examples = 3 full batches + 8, padded to 256
    chex.assert_shape(out["accuracy"], (200,))
    logits = trainer.predict(state, VAL.images)
    np.testing.assert_allclose(out["accuracy"], (logits.argmax(-1) == VAL.labels).astype(np.float32))


@pytest.mark.slow
def test_select_best_keeps_best_validation_epoch():
    cfg = TrainConfig(
        epochs=3, batch_size=64, optim=OptimConfig("adam", 1e-3), eval_batch_size=100, select="best"
    )
    result = fit(_model(), TASK, TRAIN, cfg, VAL)
    best = max(range(3), key=lambda i: result.history[i]["val_accuracy"])
    assert result.best_epoch == best + 1
    trainer = Trainer(_model(), TASK, cfg, len(TRAIN))
    acc = trainer.evaluate(result.state, VAL)["accuracy"].mean()
    assert acc == pytest.approx(result.history[best]["val_accuracy"], abs=1e-6)


def test_divergence_is_reported_with_the_step():
    cfg = TrainConfig(epochs=2, batch_size=64, optim=OptimConfig("sgd", 1e6), eval_batch_size=100)
    from jaxadl import DivergenceError

    with pytest.raises(DivergenceError) as info:
        fit(_model(), TASK, TRAIN, cfg)
    assert info.value.step >= 1
    assert np.all(np.isfinite(jax.tree.leaves(info.value.state.params)[0]))


def test_batch_larger_than_training_set_is_refused():
    with pytest.raises(ValueError, match="batch_size 1000 is larger than the training set"):
        Trainer(_model(), TASK, TrainConfig(batch_size=1000), 640)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(epochs=0), "epochs must be >= 1"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(select="worst"), "select must be"),
    ],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_augmentation_keeps_shapes_labels_and_is_deterministic():
    x = jnp.asarray(TRAIN.images[:16], jnp.float32) / 255
    y = jnp.asarray(TRAIN.labels[:16])
    cfg = AugmentConfig()
    a, ya = augment(jax.random.PRNGKey(0), x, y, cfg)
    b, _ = augment(jax.random.PRNGKey(0), x, y, cfg)
    c, _ = augment(jax.random.PRNGKey(1), x, y, cfg)
    chex.assert_shape(a, x.shape)
    np.testing.assert_array_equal(ya, y)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, x)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_augmentation_identity_when_switched_off_and_moves_masks_with_images():
    x = jnp.zeros((2, 16, 16, 1)).at[:, 4:8, 4:8].set(1.0)
    masks = (x > 0).astype(jnp.uint8)
    off = AugmentConfig(rotate_deg=0, translate_px=0, scale=0, brightness=0, contrast=0)
    same, m = augment(jax.random.PRNGKey(0), x, masks, off)
    np.testing.assert_allclose(same, x, atol=1e-6)
    shifted, m = augment(
        jax.random.PRNGKey(3),
        x,
        masks,
        AugmentConfig(rotate_deg=0, scale=0, translate_px=3, brightness=0, contrast=0),
    )
    assert set(np.unique(np.asarray(m))) <= {0, 1}
    np.testing.assert_array_equal(np.asarray(shifted) > 0.5, np.asarray(m) > 0)


def test_augmentation_is_off_in_evaluation():
    cfg = TrainConfig(epochs=1, batch_size=64, eval_batch_size=100, augment=AugmentConfig())
    plain = TrainConfig(epochs=1, batch_size=64, eval_batch_size=100)
    t1, t2 = Trainer(_model(), TASK, cfg, 640), Trainer(_model(), TASK, plain, 640)
    state = t1.init(TRAIN.images.shape[1:])
    np.testing.assert_array_equal(t1.evaluate(state, VAL)["loss"], t2.evaluate(state, VAL)["loss"])


def test_full_batch_with_batch_norm_runs_and_lowers_the_loss():
    cfg = TrainConfig(
        epochs=3, batch_size=32, full_batch=True, optim=OptimConfig("rprop", 1e-3), eval_batch_size=64
    )
    small = colour_squares(160, seed=0)
    result = fit(_model(bn=True), TASK, small, cfg)
    assert len(result.step_losses) == 3  # one step per epoch
    assert result.step_losses[-1] < result.step_losses[0]


def test_fit_refuses_best_epoch_without_validation_data():
    cfg = TrainConfig(epochs=1, batch_size=32, optim=OptimConfig("adam", 1e-3), select="best")
    with pytest.raises(ValueError, match="select='best'.*val=.*select='last'"):
        fit(_model(), TASK, TRAIN, cfg)


@pytest.mark.parametrize(
    "what,trainer_args",
    [
        ("model", dict(model=SignCNN(num_classes=10, batch_norm=True))),
        ("task", dict(task=Classification(num_classes=10, label_smoothing=0.1))),
        ("cfg", dict(cfg=TrainConfig(epochs=1, batch_size=32, optim=OptimConfig("adam", 2e-3)))),
        ("num_train", dict(num_train=320)),
    ],
)
def test_fit_refuses_a_trainer_built_for_something_else(what, trainer_args):
    cfg = TrainConfig(epochs=1, batch_size=32, optim=OptimConfig("adam", 1e-3))
    args = {"model": _model(), "task": TASK, "cfg": cfg, "num_train": len(TRAIN), **trainer_args}
    trainer = Trainer(**args)
    with pytest.raises(ValueError, match=f"trainer passed to fit was built for another {what}"):
        fit(_model(), TASK, TRAIN, cfg, trainer=trainer)


# -- full batch with batch norm: chunks, padding and running statistics --------------------------------------
FB_TRAIN = colour_squares(60, seed=3)


def _full_batch_step(chunk_size, eval_batch_size=500, images=None, labels=None):
    """One full-batch Rprop step of the batch-norm CNN on FB_TRAIN (or on the given padded arrays)."""
    cfg = TrainConfig(
        epochs=1,
        full_batch=True,
        chunk_size=chunk_size,
        eval_batch_size=eval_batch_size,
        optim=OptimConfig("rprop", 1e-3),
    )
    trainer = Trainer(_model(bn=True), TASK, cfg, len(FB_TRAIN))
    state = trainer.init(FB_TRAIN.images.shape[1:])
    x, y, _ = trainer.put_train(FB_TRAIN)
    if images is not None:
        x, y = jnp.asarray(images), jnp.asarray(labels)
    before = jax.tree.map(jnp.copy, state)  # the step donates the state it is given
    return trainer, before, trainer.train_epoch(state, x, y)[0]


def test_full_batch_padding_stays_out_of_batch_norm():
    """60 examples in chunks of 40: the last chunk holds 20 padding rows, whose values must not matter."""
    trainer, _, zeros = _full_batch_step(40)
    assert trainer.chunk == 40
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 256, (20, *FB_TRAIN.images.shape[1:]), dtype=np.uint8)
    images = np.concatenate([FB_TRAIN.images, garbage])
    labels = np.concatenate([FB_TRAIN.labels, rng.integers(0, 10, 20).astype(np.int32)])
    _, _, noisy = _full_batch_step(40, images=images, labels=labels)
    chex.assert_trees_all_close(zeros.params, noisy.params, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(zeros.batch_stats, noisy.batch_stats, rtol=1e-6, atol=1e-7)


def test_full_batch_running_stats_move_once_per_step():
    """Two chunks of 30: one momentum update with the chunks' statistics averaged, not two updates."""
    trainer, before, after = _full_batch_step(30)
    variables = {"params": before.params, "batch_stats": before.batch_stats}
    halves = []
    for rows in (slice(0, 30), slice(30, 60)):
        x = TASK.inputs(jnp.asarray(FB_TRAIN.images[rows]))
        _, updates = trainer.model.apply(variables, x, train=True, mutable=["batch_stats"])
        halves.append(updates["batch_stats"])
    want = jax.tree.map(lambda a, b: (a + b) / 2, *halves)
    chex.assert_trees_all_close(after.batch_stats, want, rtol=1e-5, atol=1e-6)


def test_full_batch_training_does_not_depend_on_the_evaluation_batch():
    _, _, a = _full_batch_step(40, eval_batch_size=500)
    _, _, b = _full_batch_step(40, eval_batch_size=7)
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.batch_stats, b.batch_stats)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        TrainConfig(full_batch=True, chunk_size=0)


def test_fit_may_stop_early_within_the_trainers_schedule_but_not_run_past_it():
    """An interrupted run: fit for 1 epoch with a trainer built for 2 is fine; 3 epochs are refused."""
    two = TrainConfig(epochs=2, batch_size=32, optim=OptimConfig("adam", 1e-3))
    trainer = Trainer(_model(), TASK, two, len(TRAIN))
    result = fit(_model(), TASK, TRAIN, dataclasses.replace(two, epochs=1), trainer=trainer)
    assert [r["epoch"] for r in result.history] == [1]
    with pytest.raises(ValueError, match="3 epochs but the trainer's schedule was built for 2"):
        fit(_model(), TASK, TRAIN, dataclasses.replace(two, epochs=3), trainer=trainer)


@pytest.mark.parametrize("full_batch", [False, True])
def test_compile_ahead_leaves_nothing_to_compile_in_the_epochs(full_batch):
    """Trainer.compile builds every program of a Python-looped epoch; the epochs then compile none of them."""
    names = ("_zero_sums", "_add_chunk", "_finish") if full_batch else ("_order", "_indexed_step")
    pieces = {f"jit({name})" for name in names}
    compiled: list[str] = []

    def listener(event, seconds, fun_name="", **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(fun_name)

    small = colour_squares(48)
    cfg = TrainConfig(epochs=3, batch_size=16, full_batch=full_batch, chunk_size=20)
    trainer = Trainer(_model(bn=full_batch), TASK, cfg, len(small), scan=False)
    state = trainer.init(small.images.shape[1:])
    x, y, _ = trainer.put_train(small)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        trainer.compile(state, x, y)
        ahead = set(compiled)
        compiled.clear()
        state, _ = trainer.train_epoch(state, x, y)
        first = set(compiled)
        compiled.clear()
        for _ in range(2):
            state, _ = trainer.train_epoch(state, x, y)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert pieces <= ahead, ahead
    assert not pieces & first, first  # only small eager helpers (indexing, stacking) compile on first use
    assert compiled == []  # and later epochs compile nothing at all

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadl.optim import OptimConfig, learning_rate_schedule, make_optimizer, rprop


def test_rprop_matches_hand_computed_sequence():
    """iRprop-: lr 0.1, eta+ 1.2, eta- 0.5. Gradient signs +, +, -, +, + on one parameter."""
    tx = rprop(0.1, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0)
    params = jnp.array([1.0])
    state = tx.init(params)
    grads = [2.0, 3.0, -1.0, 4.0, 5.0]
    # step sizes: 0.1 (first: no previous gradient), 0.12 (same sign), 0.06 (flip: no move, forget),
    # 0.06 (previous gradient forgotten -> unchanged), 0.072 (same sign)
    expected = [-0.1, -0.12, 0.0, -0.06, -0.072]
    for g, e in zip(grads, expected, strict=True):
        updates, state = tx.update(jnp.array([g]), state, params)
        np.testing.assert_allclose(np.asarray(updates), [e], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(state.step_sizes), [0.072], rtol=1e-6)


def test_rprop_first_update_is_not_zero_unlike_optax_028():
    tx = rprop(0.01)
    updates, _ = tx.update(jnp.array([0.5, -2.0, 0.0]), tx.init(jnp.zeros(3)))
    np.testing.assert_allclose(np.asarray(updates), [-0.01, 0.01, 0.0])


def test_rprop_step_sizes_are_clipped():
    tx = rprop(1.0, max_step_size=1.5, min_step_size=0.4)
    p = jnp.zeros(1)
    s = tx.init(p)
    for _ in range(5):
        _, s = tx.update(jnp.ones(1), s)
    assert float(s.step_sizes[0]) == pytest.approx(1.5)
    for g in (-1.0, 1.0, -1.0, 1.0, -1.0, 1.0):
        _, s = tx.update(jnp.array([g]), s)
    assert float(s.step_sizes[0]) == pytest.approx(0.4)


def test_onecycle_schedule_values():
    sched = learning_rate_schedule(OptimConfig("adam", 2e-3, schedule="onecycle", warmup_fraction=0.2), 100)
    assert float(sched(0)) == pytest.approx(2e-3 / 25, rel=1e-4)
    assert float(sched(20)) == pytest.approx(2e-3, rel=1e-4)
    assert float(sched(100)) < 2e-3 / 1000
    assert float(sched(60)) < float(sched(40)) < 2e-3
    const = learning_rate_schedule(OptimConfig("adam", 1e-3), 100)
    assert float(const(0)) == float(const(99)) == pytest.approx(1e-3)


def test_cosine_schedule_warms_up_from_zero():
    sched = learning_rate_schedule(OptimConfig("sgd", 0.1, schedule="cosine", warmup_fraction=0.1), 50)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.1, rel=1e-4)


def test_weight_decay_only_on_kernels():
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    tx = make_optimizer(OptimConfig("sgd", 1.0, weight_decay=0.1))
    zero = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.1 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["bias"], np.zeros(2))


def test_rprop_weight_decay_enters_through_the_gradient_sign():
    params = {"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.ones(2)}
    grads = {"kernel": jnp.array([[-0.01, 0.01]]), "bias": jnp.array([-0.01, 0.01])}
    tx = make_optimizer(OptimConfig("rprop", 0.5, weight_decay=0.1))
    updates, _ = tx.update(grads, tx.init(params), params)
    # kernel: g + 0.1 * w flips the sign of both gradients; bias: not decayed, the gradient's own sign
    np.testing.assert_allclose(updates["kernel"], [[-0.5, 0.5]])
    np.testing.assert_allclose(updates["bias"], [0.5, -0.5])
    plain = make_optimizer(OptimConfig("rprop", 0.5))
    np.testing.assert_allclose(plain.update(grads, plain.init(params), params)[0]["kernel"], [[0.5, -0.5]])


def test_rprop_factors_and_floor_come_from_the_config():
    params = {"w": jnp.zeros(3)}
    tx = make_optimizer(OptimConfig("rprop", 0.1, eta_minus=0.25, eta_plus=2.0, min_step=0.04, max_step=0.3))
    state = tx.init(params)
    grads = [jnp.array([1.0, 1.0, 1.0]), jnp.array([1.0, -1.0, 1.0]), jnp.array([1.0, 1.0, -1.0])]
    grads.append(jnp.array([1.0, 1.0, 1.0]))
    steps = []
    for g in grads:
        updates, state = tx.update({"w": g}, state, params)
        steps.append(np.asarray(updates["w"]))
    np.testing.assert_allclose(steps[0], [-0.1, -0.1, -0.1])
    np.testing.assert_allclose(steps[1], [-0.2, 0.0, -0.2])  # x2 while the sign holds; a flip skips
    # third: 0.4 would be next, capped at the ceiling 0.3; the flipped one restarts at its shrunk 0.04
    # (floor), the new flip skips; fourth: the ceiling holds
    np.testing.assert_allclose(steps[2], [-0.3, -0.04, 0.0])
    np.testing.assert_allclose(steps[3], [-0.3, -0.08, -0.05])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(name="lbfgs"), "unknown optimizer 'lbfgs'"),
        (dict(eta_minus=1.0), r"eta_minus must be in \(0, 1\), got 1.0"),
        (dict(eta_plus=1.0), "eta_plus must be > 1, got 1.0"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(momentum=-0.5), "momentum must be >= 0"),
        (dict(min_step=0.0), "min_step must be > 0"),
        (dict(max_step=1e-7), "max_step must be >= min_step, got 1e-07 against 1e-06"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(lr=0.0), "lr must be > 0"),
    ],
)
def test_bad_optimizer_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OptimConfig(**kwargs)


def test_nesterov_sgd_is_built():
    tx = make_optimizer(OptimConfig("sgd", 0.1, momentum=0.9, nesterov=True))
    p = jnp.ones(3)
    u, _ = tx.update(jnp.ones(3), tx.init(p), p)
    # nesterov first step: -lr * (g + momentum * g)
    np.testing.assert_allclose(np.asarray(u), -0.1 * 1.9 * np.ones(3), rtol=1e-6)
    assert isinstance(tx, optax.GradientTransformation)

"""The weight average past its warm-up: the decay ramps (1 + step) / (10 + step) up to TrainConfig.ema and
stays there, so after a few dozen steps the average is the configured EMA of the weights, not the ramp's."""

import flax.linen as nn
import jax
import numpy as np

from jaxadl import Classification, OptimConfig, TrainConfig, Trainer
from tests.helpers import colour_squares

TRAIN = colour_squares(64, size=28, seed=0)
TASK = Classification(num_classes=10)
STEPS, BATCH = 30, 16


class Linear(nn.Module):
    """The smallest model the trainer takes: logits = Dense(flattened pixels)."""

    @nn.compact
    def __call__(self, x, train: bool = False, mask=None):
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def _decays(ema: float) -> list[float]:
    """The decay applied at steps 0 .. STEPS-1: the warm-up ramp, capped at `ema`."""
    return [min(ema, (1.0 + s) / (10.0 + s)) for s in range(STEPS)]


def test_ema_after_the_warm_up_is_the_configured_average_of_the_weights():
    ema = 0.6  # the ramp passes 0.6 at step 13 and would go on to 0.77 by step 29 without the cap
    assert _decays(ema)[:14] == [(1.0 + s) / (10.0 + s) for s in range(13)] + [0.6]
    assert _decays(ema)[13:] == [0.6] * (STEPS - 13)
    cfg = TrainConfig(epochs=1, batch_size=BATCH, optim=OptimConfig("adam", 1e-2), ema=ema)
    trainer = Trainer(Linear(), TASK, cfg, len(TRAIN))
    state = trainer.init(TRAIN.images.shape[1:])
    step = jax.jit(trainer.train_step)
    params = [jax.tree.map(np.asarray, state.params)]
    for s in range(STEPS):
        rows = np.arange(s * BATCH, (s + 1) * BATCH) % len(TRAIN)
        state, _ = step(state, TRAIN.images[rows], TRAIN.labels[rows])
        params.append(jax.tree.map(lambda a: np.array(a, np.float64), state.params))
    assert int(state.step) == STEPS
    expected = params[0]
    for decay, new in zip(_decays(ema), params[1:], strict=True):
        expected = jax.tree.map(lambda e, p, d=decay: d * e + (1.0 - d) * p, expected, new)
    got = jax.tree.map(np.asarray, state.ema["params"])
    jax.tree.map(lambda e, g: np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6), expected, got)
    # the average lags the weights: it is neither the last weights nor the uncapped ramp's average
    uncapped = params[0]
    for s, new in enumerate(params[1:]):
        d = (1.0 + s) / (10.0 + s)
        uncapped = jax.tree.map(lambda e, p, d=d: d * e + (1.0 - d) * p, uncapped, new)
    kernel = lambda tree: tree["Dense_0"]["kernel"]
    assert np.abs(kernel(got) - kernel(uncapped)).max() > 100 * 1e-6
    assert np.abs(kernel(got) - kernel(params[-1])).max() > 100 * 1e-6

"""A trial whose loss turns non-finite keeps its last good checkpoint (README), and the run goes on.

The model here diverges at a chosen optimizer step, by construction: it counts its training calls in a
`batch_stats` variable and returns NaN logits from step AT on. So the last good checkpoint is known exactly.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadl import Classification, OptimConfig, TrainConfig
from jaxadl.checkpoint import restore_weights
from jaxadl.data.base import Dataset
from jaxadl.experiment import Variant, run_experiment
from jaxadl.run_folder import RunFolder
from tests.helpers import colour_squares

TASK = Classification(num_classes=10)
BATCH, STEPS_PER_EPOCH = 16, 3
TRAIN = colour_squares(BATCH * STEPS_PER_EPOCH, seed=0)
DATA = Dataset("squares", TRAIN, None, colour_squares(16, seed=2), 10)
AT = 8  # the first bad step (1-based): the second of epoch 3 (steps 7-9); epochs 1 and 2 (steps 1-6) are good


class DivergesAt(nn.Module):
    """logits = Dense(pixels); NaN from the `at`-th training step on."""

    at: int = AT

    @nn.compact
    def __call__(self, x, train: bool = False, mask=None):
        calls = self.variable("batch_stats", "calls", lambda: jnp.zeros((), jnp.int32))
        logits = nn.Dense(10)(x.reshape(x.shape[0], -1) / 10.0)
        if train and not self.is_initializing():
            calls.value = calls.value + 1
        return jnp.where(calls.value >= self.at, jnp.nan, logits)


def test_a_diverged_trial_keeps_its_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=BATCH, eval_batch_size=16, optim=OptimConfig("adam", 1e-3))
    variant = Variant("diverges", DivergesAt(), TASK, cfg)
    results = run_experiment("test", DATA, [variant], tmp_path, {}, log=lambda _: None, keep=1)
    (failed,) = results["trials"]
    assert (
        failed["failed"] == f"training diverged: non-finite loss at step {AT}" and failed["failed_step"] == AT
    )
    folder = RunFolder(tmp_path)
    record = json.loads(folder.trial_record("diverges", 1).read_text())
    assert record["failed_step"] == AT
    # the newest finished epoch before the bad step: epoch 2, six steps
    last = folder.checkpoints("diverges", 1) / "last"
    assert sorted(p.name for p in last.iterdir()) == ["2"]
    state = restore_weights(last)
    assert int(state["step"]) == 2 * STEPS_PER_EPOCH == AT - 2
    assert int(state["batch_stats"]["calls"]) == 2 * STEPS_PER_EPOCH
    leaves = jax.tree.leaves(state["params"])
    assert leaves and all(np.all(np.isfinite(leaf)) for leaf in leaves)

import jax.numpy as jnp
import numpy as np

from jaxadl import step


def test_in_batches_covers_a_ragged_last_batch_in_order():
    images = np.arange(10)[:, None].astype(np.float32)
    calls = []

    def double(x):
        calls.append(len(x))
        return jnp.asarray(x) * 2

    np.testing.assert_array_equal(step.in_batches(double, images, 4), images * 2)
    assert calls == [4, 4, 2]

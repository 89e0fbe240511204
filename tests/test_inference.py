import jax.numpy as jnp
import numpy as np

from jaxadl import inference, train


def test_in_batches_covers_a_ragged_last_batch_in_order():
    images = np.arange(10)[:, None].astype(np.float32)
    calls = []

    def double(x):
        calls.append(len(x))
        return jnp.asarray(x) * 2

    np.testing.assert_array_equal(inference.in_batches(double, images, 4), images * 2)
    assert calls == [4, 4, 2]


def test_train_still_exports_the_inference_helpers():
    assert train.predict_logits is inference.predict_logits and train.in_batches is inference.in_batches

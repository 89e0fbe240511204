import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadl import SignCNN, flatten_size, layer_table
from jaxadl.shapes import conv_out, format_table, pool_out


def test_report_table_1_1_2_row_by_row():
    rows = [(r.name, r.input, r.output) for r in layer_table(28, 3)]
    assert rows == [
        ("conv1", (28, 28, 3), (24, 24, 64)),
        ("conv2", (24, 24, 64), (20, 20, 32)),
        ("pool1", (20, 20, 32), (10, 10, 32)),
        ("conv3", (10, 10, 32), (8, 8, 32)),
        ("pool2", (8, 8, 32), (4, 4, 32)),
    ]
    assert flatten_size(28) == 4 * 4 * 32 == 512
    assert "flatten: 512 features" in format_table(28)
    printed = str(layer_table(28)).splitlines()  # print(layer_table(28)) shows the report's table
    assert printed[0] == "| layer | input | kernel | stride | padding | output |"
    assert (
        printed[2] == "| conv1 | 28×28×3 | 5×5 | 1 | 0 | 24×24×64 |"
        and printed[-1] == "flatten: 512 features"
    )


@pytest.mark.parametrize("size,expected", [(32, 5 * 5 * 32), (48, 9 * 9 * 32), (20, 2 * 2 * 32)])
def test_flatten_size_other_inputs(size, expected):
    assert flatten_size(size) == expected


def test_conv_and_pool_arithmetic():
    assert conv_out(28, 5) == 24
    assert conv_out(28, 5, stride=2, padding=2) == 14
    assert pool_out(9, 2) == 4  # floor mode
    with pytest.raises(ValueError, match="too small"):
        flatten_size(12)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("size", [28, 32])
def test_cnn_output_shape_dtype_and_dense_input(batch_norm, size):
    model = SignCNN(batch_norm=batch_norm)
    x = jnp.zeros((2, size, size, 3))
    variables = model.init(jax.random.PRNGKey(0), x)
    logits = model.apply(variables, x)
    chex.assert_shape(logits, (2, 43))
    chex.assert_type(logits, jnp.float32)
    assert variables["params"]["fc"]["kernel"].shape == (flatten_size(size), 43)
    assert ("batch_stats" in variables) == batch_norm


def test_cnn_logits_can_be_negative():
    """The report's listing put a ReLU on the logits; ours are raw scores."""
    model = SignCNN()
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, 28, 28, 3))
    logits = model.apply(model.init(jax.random.PRNGKey(0), x), x)
    assert float(logits.min()) < 0


def test_batch_norm_eval_is_independent_of_the_rest_of_the_batch():
    model = SignCNN(batch_norm=True)
    key = jax.random.PRNGKey(0)
    x = jax.random.uniform(key, (6, 28, 28, 3))
    variables = model.init(key, x)
    # move the running statistics away from their initial values with a training pass
    _, updates = model.apply(variables, x * 3.0, train=True, mutable=["batch_stats"])
    variables = {**variables, **updates}
    alone = model.apply(variables, x[:1], train=False)
    other = jnp.concatenate([x[:1], jax.random.uniform(jax.random.PRNGKey(5), (5, 28, 28, 3)) * 10])
    mixed = model.apply(variables, other, train=False)
    np.testing.assert_allclose(alone[0], mixed[0], rtol=1e-5, atol=1e-5)
    # in training mode the batch does matter (batch statistics)
    t1, _ = model.apply(variables, x[:2], train=True, mutable=["batch_stats"])
    t2, _ = model.apply(
        variables, other[:2] * 0 + jnp.concatenate([x[:1], x[:1] * 5]), train=True, mutable=["batch_stats"]
    )
    assert not np.allclose(t1[0], t2[0], atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 20, 20, 5), (2, 9, 7, 4)])
def test_fast_pool_equals_flax_max_pool_in_value_and_gradient(shape):
    import flax.linen as nn

    from jaxadl.models.cnn import max_pool_2x2

    x = jax.random.normal(jax.random.key(0), shape)  # continuous values: no ties inside a window
    w = jax.random.normal(jax.random.key(1), max_pool_2x2(x).shape)
    flax_pool = lambda a: nn.max_pool(a, (2, 2), strides=(2, 2))
    np.testing.assert_array_equal(max_pool_2x2(x), flax_pool(x))
    g_fast = jax.grad(lambda a: jnp.sum(max_pool_2x2(a) * w))(x)
    g_flax = jax.grad(lambda a: jnp.sum(flax_pool(a) * w))(x)
    np.testing.assert_array_equal(g_fast, g_flax)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_sign_cnn_fast_pool_matches_nn_max_pool_end_to_end(batch_norm):
    x = jax.random.uniform(jax.random.key(2), (4, 28, 28, 3))
    fast, plain = SignCNN(batch_norm=batch_norm), SignCNN(batch_norm=batch_norm, fast_pool=False)
    variables = plain.init(jax.random.key(0), x)

    def loss(params, model):
        out, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(out**2)

    assert fast.fast_pool and loss(variables["params"], fast) == pytest.approx(
        float(loss(variables["params"], plain)), rel=1e-6
    )
    g_fast = jax.grad(loss)(variables["params"], fast)
    g_plain = jax.grad(loss)(variables["params"], plain)
    chex.assert_trees_all_close(g_fast, g_plain, rtol=1e-5, atol=1e-6)

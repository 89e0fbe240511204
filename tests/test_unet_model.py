"""UNet: shapes for several depths and sizes, variants that really differ, batch norm, argument errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadl.models.unet import UNet, unet_cost

WIDTH = 4


def _x(n: int = 2, size: int = 32, channels: int = 1, seed: int = 0) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (n, size, size, channels), jnp.float32)


@pytest.mark.parametrize(("depth", "size"), [(1, 32), (2, 32), (3, 32), (4, 32), (4, 64), (4, 48)])
def test_output_shape_matches_input(depth: int, size: int) -> None:
    model = UNet(depth=depth, base_features=WIDTH)
    x = _x(size=size)
    y, _ = model.init_with_output(jax.random.key(0), x)
    chex.assert_shape(y, x.shape)
    chex.assert_type(y, jnp.float32)
    chex.assert_tree_all_finite(y)


def test_non_square_and_out_channels() -> None:
    model = UNet(depth=2, base_features=WIDTH, out_channels=3)
    x = jnp.zeros((1, 16, 32, 2))
    y, _ = model.init_with_output(jax.random.key(0), x)
    chex.assert_shape(y, (1, 16, 32, 3))


@pytest.mark.parametrize(("depth", "size"), [(4, 40), (3, 36), (1, 33)])
def test_size_not_divisible_raises(depth: int, size: int) -> None:
    model = UNet(depth=depth, base_features=WIDTH)
    with pytest.raises(ValueError, match=rf"{size}x{size}.*depth {depth}"):
        model.init(jax.random.key(0), _x(size=size))


def test_upsample_and_activation_variants_differ() -> None:
    x = _x()
    base = UNet(depth=2, base_features=WIDTH)
    variables = base.init(jax.random.key(1), x)
    outputs = {"bilinear-relu": base.apply(variables, x)}
    # Same parameter tree: nearest resize and ELU reuse the bilinear/ReLU parameters.
    for name, model in {
        "nearest-relu": UNet(depth=2, base_features=WIDTH, upsample="nearest"),
        "bilinear-elu": UNet(depth=2, base_features=WIDTH, activation="elu"),
    }.items():
        chex.assert_trees_all_equal_shapes(model.init(jax.random.key(1), x), variables)
        outputs[name] = model.apply(variables, x)
    transpose = UNet(depth=2, base_features=WIDTH, upsample="transpose")
    outputs["transpose-relu"] = transpose.apply(transpose.init(jax.random.key(1), x), x)
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.allclose(outputs[a], outputs[b], atol=1e-6), (a, b)


def test_batch_norm_state_and_eval_independence() -> None:
    model = UNet(depth=2, base_features=WIDTH, batch_norm=True)
    x = _x(n=3)
    variables = model.init(jax.random.key(0), x)
    assert "batch_stats" in variables
    y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    chex.assert_shape(y, x.shape)
    old, new = variables["batch_stats"], updates["batch_stats"]
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), new, old)
    assert any(jax.tree_util.tree_leaves(changed))
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    alone = model.apply(variables, x[:1])
    with_others = model.apply(variables, jnp.concatenate([x[:1], 5.0 * x[1:] + 3.0]))
    np.testing.assert_allclose(alone[0], with_others[0], rtol=1e-5, atol=1e-5)
    # In training mode the batch statistics do couple the images.
    t_alone, _ = model.apply(variables, x[:2], train=True, mutable=["batch_stats"])
    other = jnp.concatenate([x[:1], 5.0 * x[1:2] + 3.0])
    t_other, _ = model.apply(variables, other, train=True, mutable=["batch_stats"])
    assert not np.allclose(t_alone[0], t_other[0], atol=1e-4)


def test_no_batch_stats_without_batch_norm() -> None:
    variables = UNet(depth=1, base_features=WIDTH).init(jax.random.key(0), _x(size=8))
    assert set(variables) == {"params"}


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [({"upsample": "bicubic"}, "bicubic"), ({"activation": "gelu"}, "gelu")],
)
def test_bad_choices_raise(kwargs: dict, value: str) -> None:
    with pytest.raises(ValueError, match=value) as err:
        UNet(depth=1, base_features=WIDTH, **kwargs).init(jax.random.key(0), _x(size=8))
    assert "choose one of" in str(err.value)


def test_unet_cost_small() -> None:
    cost = unet_cost(depth=1, base_features=WIDTH, image_size=16)
    # conv1 1->4 (40) + conv 4->4 (148) + bottleneck 4->8 (296) + 8->8 (584)
    # + up conv 8->4 (292) + decoder 8->4 (292) + 4->4 (148) + head 4->1 (5)
    assert cost["params"] == 40 + 148 + 296 + 584 + 292 + 292 + 148 + 5
    # 2 per multiply-add over the taps on the image, + biases, ReLUs, pool, resize: 579,616 by hand (test_cost.py)
    assert 579_616 <= cost["flops"] <= 1.01 * 579_616

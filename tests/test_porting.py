"""jaxadl <-> PyTorch weights: exact round trips (numpy only) and numerical parity with the torch models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadl import Classification, Segmentation, SignCNN, UNet
from jaxadl.porting import from_torch_state_dict, layout, to_torch_state_dict

UNET_VARIANTS = [(up, bn) for up in ("bilinear", "nearest", "transpose") for bn in (False, True)]


def _variables(model, shape, seed=0):
    """Random variables of the model's shapes (no init compile): fan-in scaled kernels, non-trivial batch
    norm parameters and running statistics."""
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), jnp.zeros((1, *shape)))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        elif name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, leaf.shape)
        else:  # bias, mean
            value = rng.normal(0, 0.1, leaf.shape)
        return value.astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _unet(upsample, batch_norm):
    return UNet(depth=2, base_features=4, upsample=upsample, batch_norm=batch_norm)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# -- numpy only -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_round_trip(batch_norm):
    model = SignCNN(batch_norm=batch_norm)
    v = _variables(model, (28, 28, 3))
    sd = to_torch_state_dict(v, model, num_batches_tracked=7)
    assert sd["conv1.weight"].shape == (64, 3, 5, 5)
    assert sd["fc1.weight"].shape == (43, 512)
    assert ("batch1.running_var" in sd) == batch_norm
    if batch_norm:
        assert sd["batch2.num_batches_tracked"] == 7
    _assert_trees_equal(from_torch_state_dict(sd, model), v)


@pytest.mark.parametrize("upsample,batch_norm", UNET_VARIANTS)
def test_unet_round_trip(upsample, batch_norm):
    model = _unet(upsample, batch_norm)
    v = _variables(model, (32, 32, 1))
    sd = to_torch_state_dict(v, model)
    expected_up = (8, 4, 2, 2) if upsample == "transpose" else (4, 8, 3, 3)
    assert sd["up.0.weight"].shape == expected_up
    assert sd["head.weight"].shape == (1, 4, 1, 1)
    assert ("down.0.conv1.bias" in sd) == (not batch_norm)
    _assert_trees_equal(from_torch_state_dict(sd, model), v)
    # every Flax leaf is used exactly once
    names = {e.flax for e in layout(model)}
    assert names == set(v["params"])


def test_flatten_order_matches_nchw_linear():
    """The converted fc weight applied to an NCHW flatten equals the Flax kernel on the NHWC flatten."""
    rng = np.random.default_rng(0)
    model = SignCNN()
    v = _variables(model, (28, 28, 3))
    fmap = rng.normal(size=(2, 4, 4, 32)).astype(np.float32)  # NHWC, what enters fc
    flax_out = fmap.reshape(2, -1) @ v["params"]["fc"]["kernel"]
    w = to_torch_state_dict(v, model)["fc1.weight"]
    torch_out = fmap.transpose(0, 3, 1, 2).reshape(2, -1) @ w.T
    np.testing.assert_allclose(torch_out, flax_out, rtol=1e-5, atol=1e-5)


def test_unknown_model_rejected():
    with pytest.raises(TypeError, match="SignCNN or UNet"):
        layout(object())


# -- parity with PyTorch --------------------------------------------------------------------------------------
def _jax_side(model, v, x, y, task, train):
    def loss_fn(params):
        variables = {**v, "params": params}
        if train and "batch_stats" in v:
            out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        else:
            out, updates = model.apply(variables, x, train=train), {}
        return task.loss(out, y).mean(), (out, updates)

    (loss, (out, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(v["params"])
    return float(loss), np.asarray(out), jax.tree.map(np.asarray, grads), updates.get("batch_stats")


def _torch_side(torch_model, sd, x_nchw, y, loss_fn, train):
    import torch

    torch_model.load_state_dict({k: torch.from_numpy(np.array(a)) for k, a in sd.items()})
    torch_model.train(train)
    torch_model.zero_grad()
    out = torch_model(torch.from_numpy(x_nchw))
    loss = loss_fn(out, torch.from_numpy(y))
    loss.backward()
    grads = dict(sd)  # buffers kept, parameters replaced by their gradients
    grads.update({k: p.grad.numpy() for k, p in torch_model.named_parameters()})
    state = {k: b.numpy() for k, b in torch_model.state_dict().items()}
    return float(loss.detach()), out.detach().numpy(), grads, state


def _close(a, b, tol=2e-4, floor=1e-6):
    """Close relative to the array's own scale; `floor` absorbs round-off on gradients that are zero in
    exact arithmetic (a conv bias followed by batch norm)."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max() + floor)


def _check_parity(model, torch_model, v, x_nhwc, y_jax, y_torch, task, torch_loss, train):
    sd = to_torch_state_dict(v, model)
    assert set(sd) == set(torch_model.state_dict())
    for k, a in torch_model.state_dict().items():
        assert tuple(a.shape) == sd[k].shape, k
    loss_j, out_j, grads_j, stats_j = _jax_side(model, v, x_nhwc, y_jax, task, train)
    loss_t, out_t, grads_t, state_t = _torch_side(
        torch_model, sd, np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)), y_torch, torch_loss, train
    )
    if out_t.ndim == 4:
        out_t = out_t.transpose(0, 2, 3, 1)
    _close(out_t, out_j)
    assert loss_t == pytest.approx(loss_j, rel=1e-5, abs=1e-6)
    back = from_torch_state_dict(grads_t, model)["params"]
    assert jax.tree.structure(back) == jax.tree.structure(grads_j)
    for path, g in jax.tree_util.tree_leaves_with_path(grads_j):
        other = back
        for key in path:
            other = other[key.key]
        _close(other, g, tol=1e-3)
    if stats_j is not None:  # running statistics after one training-mode pass
        new = from_torch_state_dict(state_t, model)["batch_stats"]
        for name, s in stats_j.items():
            _close(new[name]["mean"], s["mean"], tol=1e-4)
            # PyTorch folds in the unbiased batch variance, Flax the biased one
            n = x_nhwc.shape[0] * np.prod(_feature_hw(model, name, x_nhwc.shape[1]))
            old = v["batch_stats"][name]["var"]
            biased = (np.asarray(s["var"]) - 0.9 * old) / 0.1
            _close(new[name]["var"], 0.9 * old + 0.1 * biased * n / (n - 1), tol=1e-3)


def _feature_hw(model, bn_name, size):
    """Spatial size of the feature map a batch-norm layer normalises."""
    if isinstance(model, SignCNN):
        return {"bn1": size - 4, "bn2": size - 8, "bn3": (size - 8) // 2 - 2}[bn_name] ** 2
    entries = [e for e in layout(model) if e.kind == "batch_norm"]
    prefix = next(e.torch for e in entries if e.flax == bn_name).split(".")[0:2]
    level = model.depth if prefix[0] == "bottom" else int(prefix[1])
    return (size // 2**level) ** 2


@pytest.mark.parametrize("batch_norm,train", [(False, True), (True, True), (True, False)])
def test_cnn_matches_torch(batch_norm, train):
    pytest.importorskip("torch")
    import torch.nn.functional as F

    from benchmarks.torch_models import TorchSignCNN

    model = SignCNN(batch_norm=batch_norm)
    v = _variables(model, (28, 28, 3), seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 28, 28, 3)).astype(np.float32)
    y = rng.integers(0, 43, 8)
    _check_parity(
        model,
        TorchSignCNN(batch_norm),
        v,
        x,
        y.astype(np.int32),
        y.astype(np.int64),
        Classification(43),
        F.cross_entropy,
        train,
    )


@pytest.mark.parametrize("upsample,batch_norm", UNET_VARIANTS)
def test_unet_matches_torch(upsample, batch_norm):
    pytest.importorskip("torch")
    import torch.nn.functional as F

    from benchmarks.torch_models import TorchUNet

    model = _unet(upsample, batch_norm)
    v = _variables(model, (32, 32, 1), seed=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 32, 32, 1)).astype(np.float32)
    mask = (rng.random((2, 32, 32, 1)) > 0.5).astype(np.float32)
    _check_parity(
        model,
        TorchUNet(2, 4, upsample, "relu", batch_norm),
        v,
        x,
        mask.astype(np.uint8),
        np.ascontiguousarray(mask.transpose(0, 3, 1, 2)),
        Segmentation(),
        F.binary_cross_entropy_with_logits,
        train=True,
    )


def test_unet_elu_eval_matches_torch():
    pytest.importorskip("torch")
    import torch.nn.functional as F

    from benchmarks.torch_models import TorchUNet

    model = UNet(depth=2, base_features=4, activation="elu", batch_norm=True)
    v = _variables(model, (32, 32, 1), seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 32, 32, 1)).astype(np.float32)
    mask = (rng.random((2, 32, 32, 1)) > 0.5).astype(np.float32)
    _check_parity(
        model,
        TorchUNet(2, 4, "bilinear", "elu", True),
        v,
        x,
        mask.astype(np.uint8),
        np.ascontiguousarray(mask.transpose(0, 3, 1, 2)),
        Segmentation(),
        F.binary_cross_entropy_with_logits,
        train=False,
    )

"""Weights between jaxadl and PyTorch: Flax variables <-> a PyTorch-style state_dict of numpy arrays.

Numpy only (no torch import): ``torch.load``/``torch.save`` the dict yourself, wrapping each array with
``torch.from_numpy``. The PyTorch-side names are those of the report's listings for the CNN
(``conv1 conv2 conv3 fc1``, ``batch1..3``) and of ``benchmarks.torch_models.TorchUNet`` for the U-Net
(``down.<level>.conv1``, ``bottom.bn2``, ``up.<level>``, ``dec.<level>.conv1``, ``head``).

What changes on the way:

- Conv kernels: Flax HWIO <-> PyTorch OIHW.
- ConvTranspose kernels: Flax ``(kh, kw, in, out)`` applied without flipping (``lax.conv_transpose``,
  ``transpose_kernel=False``) <-> PyTorch ``(in, out, kh, kw)``, which is the gradient of a conv, i.e. the
  same kernel flipped in both spatial axes.
- Dense: Flax ``(in, out)`` <-> Linear ``(out, in)``, and the rows follow the flatten order: Flax flattens an
  NHWC feature map as (h, w, c), PyTorch an NCHW one as (c, h, w).
- BatchNorm: ``scale bias`` (params) and ``mean var`` (batch_stats) <-> ``weight bias running_mean
  running_var`` (+ ``num_batches_tracked``, which jaxadl does not keep; pass ``num_batches_tracked=``).

One semantic difference remains and no conversion can remove it: in training mode PyTorch updates
``running_var`` with the unbiased batch variance (n / (n - 1) times the biased one), Flax with the biased
one. Outputs, losses and gradients agree; running variances drift apart by that factor's share.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxadl.models import SignCNN, UNet

__all__ = ["from_torch_state_dict", "layout", "to_torch_state_dict"]


class Entry(NamedTuple):
    """One layer: its kind (conv, conv_transpose, dense_flatten, batch_norm), Flax name and PyTorch name."""

    kind: str
    flax: str
    torch: str


def _unet_layout(model: Any) -> Iterator[Entry]:
    """UNet: two convs (+ norms) per encoder level and the bottom, then per level an up step and two convs."""
    convs, bns, transposes = iter(range(10**6)), iter(range(10**6)), iter(range(10**6))

    def block(prefix: str) -> Iterator[Entry]:
        for i in (1, 2):
            yield Entry("conv", f"Conv_{next(convs)}", f"{prefix}.conv{i}")
            if model.batch_norm:
                yield Entry("batch_norm", f"BatchNorm_{next(bns)}", f"{prefix}.bn{i}")

    for level in range(model.depth):
        yield from block(f"down.{level}")
    yield from block("bottom")
    for level in reversed(range(model.depth)):
        if model.upsample == "transpose":
            yield Entry("conv_transpose", f"ConvTranspose_{next(transposes)}", f"up.{level}")
        else:
            yield Entry("conv", f"Conv_{next(convs)}", f"up.{level}")
        yield from block(f"dec.{level}")
    yield Entry("conv", f"Conv_{next(convs)}", "head")


def _cnn_layout(model: Any) -> Iterator[Entry]:
    """SignCNN: three convs (+ norms), then the dense layer fed by the flattened map."""
    for i in (1, 2, 3):
        yield Entry("conv", f"conv{i}", f"conv{i}")
        if model.batch_norm:
            yield Entry("batch_norm", f"bn{i}", f"batch{i}")
    yield Entry("dense_flatten", "fc", "fc1")


_LAYOUTS = {SignCNN: _cnn_layout, UNet: _unet_layout}


def layout(model: Any) -> list[Entry]:
    """The layers of a jaxadl ``SignCNN`` or ``UNet`` (or a subclass) in order, with their Flax and PyTorch
    names."""
    for cls in type(model).__mro__:
        if cls in _LAYOUTS:
            return list(_LAYOUTS[cls](model))
    raise TypeError(f"no PyTorch layout for {type(model).__name__}; expected jaxadl SignCNN or UNet")


def _flatten_perm_to_torch(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Flax Dense kernel (h*w*c, out) fed by an NHWC flatten -> Linear weight (out, c*h*w)."""
    features, out = kernel.shape
    hw = features // channels
    side = math.isqrt(hw)
    if side * side != hw or hw * channels != features:
        raise ValueError(f"cannot split {features} dense inputs into a square map of {channels} channels")
    return kernel.reshape(side, side, channels, out).transpose(3, 2, 0, 1).reshape(out, features)


def _flatten_perm_from_torch(weight: np.ndarray, channels: int) -> np.ndarray:
    """Linear weight (out, c*h*w) fed by an NCHW flatten -> Flax Dense kernel (h*w*c, out)."""
    out, features = weight.shape
    side = math.isqrt(features // channels)
    if side * side * channels != features:
        raise ValueError(f"cannot split {features} linear inputs into a square map of {channels} channels")
    return weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(features, out)


def to_torch_state_dict(
    variables: Mapping[str, Any], model: Any, num_batches_tracked: int = 0
) -> dict[str, np.ndarray]:
    """Flax ``{"params": ..., "batch_stats": ...}`` of ``model`` -> PyTorch state_dict (numpy arrays)."""
    params, stats = variables["params"], variables.get("batch_stats", {})
    out: dict[str, np.ndarray] = {}
    last_channels = None
    for kind, fname, tname in layout(model):
        if kind == "batch_norm":
            p, s = params[fname], stats[fname]
            out[f"{tname}.weight"] = np.array(p["scale"], np.float32)
            out[f"{tname}.bias"] = np.array(p["bias"], np.float32)
            out[f"{tname}.running_mean"] = np.array(s["mean"], np.float32)
            out[f"{tname}.running_var"] = np.array(s["var"], np.float32)
            out[f"{tname}.num_batches_tracked"] = np.array(num_batches_tracked, np.int64)
            continue
        p = params[fname]
        kernel = np.asarray(p["kernel"], np.float32)
        if kind == "conv":
            weight = kernel.transpose(3, 2, 0, 1)
            last_channels = kernel.shape[-1]
        elif kind == "conv_transpose":
            weight = kernel.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
        else:
            weight = _flatten_perm_to_torch(kernel, last_channels)
        out[f"{tname}.weight"] = np.ascontiguousarray(weight)
        if "bias" in p:
            out[f"{tname}.bias"] = np.array(p["bias"], np.float32)
    return out


def from_torch_state_dict(state_dict: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """PyTorch state_dict (numpy arrays or tensors) -> Flax variables of ``model`` (numpy arrays).

    Returns ``{"params": ...}`` plus ``"batch_stats"`` when the model has batch norm;
    ``num_batches_tracked`` is dropped.
    """

    def arr(name: str) -> np.ndarray:
        value = state_dict[name]
        if hasattr(value, "detach"):  # a torch tensor, converted without importing torch
            value = value.detach().cpu().numpy()
        return np.asarray(value, np.float32)

    params: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    last_channels = None
    for kind, fname, tname in layout(model):
        if kind == "batch_norm":
            params[fname] = {"scale": arr(f"{tname}.weight"), "bias": arr(f"{tname}.bias")}
            stats[fname] = {"mean": arr(f"{tname}.running_mean"), "var": arr(f"{tname}.running_var")}
            continue
        weight = arr(f"{tname}.weight")
        if kind == "conv":
            kernel = weight.transpose(2, 3, 1, 0)
            last_channels = weight.shape[0]
        elif kind == "conv_transpose":
            kernel = weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
        else:
            kernel = _flatten_perm_from_torch(weight, last_channels)
        params[fname] = {"kernel": np.ascontiguousarray(kernel)}
        if f"{tname}.bias" in state_dict:
            params[fname]["bias"] = arr(f"{tname}.bias")
    return {"params": params, "batch_stats": stats} if stats else {"params": params}

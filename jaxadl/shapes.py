"""Output-size arithmetic for convolutions and pooling: the report's table 1.1.2, for any input size."""

from __future__ import annotations

import dataclasses


def conv_out(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Side length after a convolution: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    out = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(
            f"input of size {n} is too small for kernel {kernel} (stride {stride}, padding {padding})"
        )
    return out


def pool_out(n: int, window: int, stride: int | None = None, padding: int = 0) -> int:
    """Side length after max pooling (floor mode, stride defaults to the window)."""
    return conv_out(n, window, stride or window, padding)


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """One row of table 1.1.2: a layer's input and output as (height, width, channels)."""

    name: str
    kernel: int
    stride: int
    padding: int
    input: tuple[int, int, int]
    output: tuple[int, int, int]


# The report's network (section 1.1.1): (name, kind, kernel, out_channels); stride 1 convs, 2x2 pools.
SIGN_CNN_LAYERS: tuple[tuple[str, str, int, int | None], ...] = (
    ("conv1", "conv", 5, 64),
    ("conv2", "conv", 5, 32),
    ("pool1", "pool", 2, None),
    ("conv3", "conv", 3, 32),
    ("pool2", "pool", 2, None),
)


class LayerTable(list):
    """The rows of table 1.1.2 (LayerShape each); printed, the table as the report shows it."""

    def __str__(self) -> str:
        lines = ["| layer | input | kernel | stride | padding | output |", "|---|---|---|---|---|---|"]
        for r in self:
            i, o = "×".join(map(str, r.input)), "×".join(map(str, r.output))
            lines.append(f"| {r.name} | {i} | {r.kernel}×{r.kernel} | {r.stride} | {r.padding} | {o} |")
        h, w, c = self[-1].output
        lines.append(f"\nflatten: {h * w * c} features")
        return "\n".join(lines)


def layer_table(image_size: int = 28, channels: int = 3) -> LayerTable:
    """Table 1.1.2 row by row for a square input of `image_size` pixels (print it for the table)."""
    h = w = image_size
    c = channels
    rows = []
    for name, kind, k, out_c in SIGN_CNN_LAYERS:
        if kind == "conv":
            nh, nw, nc, stride = conv_out(h, k), conv_out(w, k), out_c, 1
        else:
            nh, nw, nc, stride = pool_out(h, k), pool_out(w, k), c, k
        rows.append(LayerShape(name, k, stride, 0, (h, w, c), (nh, nw, nc)))
        h, w, c = nh, nw, nc
    return LayerTable(rows)


def flatten_size(image_size: int = 28, channels: int = 3) -> int:
    """Features entering the dense layer: 4*4*32 = 512 for the report's 28x28 input."""
    h, w, c = layer_table(image_size, channels)[-1].output
    return h * w * c


def format_table(image_size: int = 28, channels: int = 3) -> str:
    """Table 1.1.2 as Markdown."""
    return str(layer_table(image_size, channels))

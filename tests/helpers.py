"""Tiny learnable data for training tests: each class is a coloured square on a noisy background."""

import numpy as np

from jaxadl.data.base import Split


def colour_squares(n: int, num_classes: int = 10, size: int = 28, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n).astype(np.int32)
    images = (rng.random((n, size, size, 3)) * 80).astype(np.uint8)
    palette = (
        np.stack([np.arange(num_classes) * 97, np.arange(num_classes) * 53, np.arange(num_classes) * 29], 1)
        % 200
        + 55
    ).astype(np.uint8)
    off = rng.integers(4, 10, (n, 2))
    for i in range(n):
        y, x = off[i]
        images[i, y : y + 12, x : x + 12] = palette[labels[i]]
    return Split(images, labels)


def lines(ax) -> dict:
    """The curves of a matplotlib axis: label -> y values."""
    import numpy as np

    return {line.get_label(): np.asarray(line.get_ydata(), float) for line in ax.get_lines()}

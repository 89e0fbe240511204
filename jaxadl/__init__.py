"""jaxadl: the report's traffic-sign CNN and lung U-Net as a pure-functional JAX library.

source -> arrays (jaxadl.data) -> device -> epoch (jaxadl.trainer) -> history (jaxadl.train) -> report (jaxadl.report, plots)

The names below load their module on first use, so `import jaxadl.run_folder` (file layouts, no JAX) stays
light; the XLA:CPU flags are set here, before any JAX computation.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jaxadl import _xla_flags  # noqa: F401  (must precede the first JAX computation)

if TYPE_CHECKING:
    from jaxadl.augment import AugmentConfig, augment
    from jaxadl.data.base import Dataset, DatasetError, Split
    from jaxadl.models.cnn import SignCNN
    from jaxadl.models.unet import UNet
    from jaxadl.optim import OptimConfig, make_optimizer, rprop
    from jaxadl.shapes import conv_out, flatten_size, layer_table, pool_out
    from jaxadl.step import TrainState, create_state
    from jaxadl.tasks import Classification, Segmentation, Task
    from jaxadl.train import DivergenceError, FitResult, fit
    from jaxadl.trainer import TrainConfig, Trainer

__version__ = "0.1.0"

# Each public name is listed three times, each for a reader: the TYPE_CHECKING imports for type checkers and
# editors, _HOME for loading on first use, the literal __all__ for ruff and `import *`; tests/test_structure.py
# holds the three equal.
_HOME = {
    "jaxadl.augment": ["AugmentConfig", "augment"],
    "jaxadl.data.base": ["Dataset", "DatasetError", "Split"],
    "jaxadl.models.cnn": ["SignCNN"],
    "jaxadl.models.unet": ["UNet"],
    "jaxadl.optim": ["OptimConfig", "make_optimizer", "rprop"],
    "jaxadl.shapes": ["conv_out", "flatten_size", "layer_table", "pool_out"],
    "jaxadl.step": ["TrainState", "create_state"],
    "jaxadl.tasks": ["Classification", "Segmentation", "Task"],
    "jaxadl.train": ["DivergenceError", "FitResult", "fit"],
    "jaxadl.trainer": ["TrainConfig", "Trainer"],
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
    "AugmentConfig",
    "Classification",
    "Dataset",
    "DatasetError",
    "DivergenceError",
    "FitResult",
    "OptimConfig",
    "Segmentation",
    "SignCNN",
    "Split",
    "Task",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "UNet",
    "augment",
    "conv_out",
    "create_state",
    "fit",
    "flatten_size",
    "layer_table",
    "make_optimizer",
    "pool_out",
    "rprop",
]


def __getattr__(name: str) -> Any:
    """Load a public name's module when the name is first asked for."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'jaxadl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""jaxadl: the report's traffic-sign CNN and lung U-Net as a pure-functional JAX library.

source -> arrays (jaxadl.data) -> device -> epoch (jaxadl.trainer) -> history (jaxadl.train) -> report (jaxadl.report, plots)
"""

from jaxadl import _xla_flags  # noqa: F401  (must precede the first JAX computation)
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

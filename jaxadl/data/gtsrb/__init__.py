"""Real GTSRB traffic-sign data (43 classes), prepared once through a TF-free TFDS builder.

Read top to bottom: ``sources`` (the source folder and its layouts), ``fetch`` (which folder, or a
download), ``decode`` (one image to fixed-size RGB), ``builder`` (the TFDS builder), ``load``
(:func:`load_gtsrb`: cache -> arrays -> train/val/test). The cache itself is :mod:`jaxadl.data.cache`.
"""

from jaxadl.data.cache import NPZ_NAME
from jaxadl.data.gtsrb.builder import JaxadlGtsrb, config_name
from jaxadl.data.gtsrb.fetch import GTSRB_ENV
from jaxadl.data.gtsrb.load import load_gtsrb, track_folds, track_split
from jaxadl.data.gtsrb.sources import (
    ARCHIVES,
    CROPS,
    DOWNLOAD_URL,
    NUM_CLASSES,
    TEST_GT_ZIP,
    TEST_ZIP,
    TRACK_GROUP_ROWS,
    TRAIN_ZIP,
)

__all__ = [
    "ARCHIVES",
    "CROPS",
    "DOWNLOAD_URL",
    "GTSRB_ENV",
    "NPZ_NAME",
    "NUM_CLASSES",
    "TEST_GT_ZIP",
    "TEST_ZIP",
    "TRACK_GROUP_ROWS",
    "TRAIN_ZIP",
    "JaxadlGtsrb",
    "config_name",
    "load_gtsrb",
    "track_folds",
    "track_split",
]

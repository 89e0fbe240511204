"""Data sources -> uint8 arrays: GTSRB, JSRT lungs, a folder of masks, and synthetic sets for offline runs."""

from jaxadl.data.base import Dataset, DatasetError, Split, cross_val_fold, hold_out_val

__all__ = ["Dataset", "DatasetError", "Split", "cross_val_fold", "hold_out_val"]

"""Data sources -> uint8 arrays: GTSRB, JSRT lungs, a folder of masks, and synthetic sets for offline runs."""

from jaxadl.data.base import Dataset, DatasetError, Split

__all__ = ["Dataset", "DatasetError", "Split"]

"""Lung segmentation data (report section 2): JSRT + SCR masks, a generic image/mask folder, or synthetic.

Every loader returns a :class:`~jaxadl.data.base.Dataset` with uint8 images [N,S,S,1] and uint8
masks [N,S,S,1] in {0,1} (``num_classes=1``). The file-based loaders prepare the data once through a
TF-free TFDS builder in :mod:`jaxadl.data.cache` (keyed by image size, split options and the source
files). Read top to bottom: ``images`` (reading and resizing), ``prepare`` (the builders and the path
through the cache), then one module per source: ``jsrt``, ``folder``, ``synthetic``.
"""

from jaxadl.data.lungs.folder import IMAGE_EXTENSIONS, folder_split, load_lung_folder
from jaxadl.data.lungs.jsrt import JSRT_ENV, jsrt_intensity, jsrt_split, load_jsrt
from jaxadl.data.lungs.prepare import prepare_cases
from jaxadl.data.lungs.synthetic import synthetic_lungs

__all__ = [
    "IMAGE_EXTENSIONS",
    "JSRT_ENV",
    "folder_split",
    "jsrt_intensity",
    "jsrt_split",
    "load_jsrt",
    "load_lung_folder",
    "prepare_cases",
    "synthetic_lungs",
]

"""TensorFlow-datasets without TensorFlow, shared by the GTSRB and lung builders.

What both need: the cache root, a quiet preparation, and a builder base that never looks for package
resources or for TFDS's cloud bucket (neither exists for a dataset prepared from local files).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import tensorflow_datasets as tfds

CACHE_ENV = "JAXADL_DATA_DIR"


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root, absolute: the argument, else ``$JAXADL_DATA_DIR``, else ``~/.cache/jaxadl``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path("~/.cache/jaxadl")
    return Path(cache_dir).expanduser().absolute()


@contextlib.contextmanager
def quiet_tfds(quiet: bool = True) -> Iterator[None]:
    """Silence TFDS's progress bars, stdout banner and info logs while preparing; restore them after.

    jaxadl prints its own progress lines to stderr; `quiet=False` leaves TFDS's output as it is.
    """
    if not quiet:
        yield
        return
    from absl import logging as absl_logging
    from tensorflow_datasets.core.utils import tqdm_utils

    was, verbosity = tqdm_utils._active, absl_logging.get_verbosity()
    tqdm_utils.display_progress_bar(False)
    absl_logging.set_verbosity(absl_logging.ERROR)  # e.g. "Using custom data configuration"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tqdm_utils.display_progress_bar(was)
        absl_logging.set_verbosity(verbosity)


class LocalInfo(tfds.core.DatasetInfo):
    """DatasetInfo of a dataset that exists only on this machine.

    TFDS asks its cloud bucket for the info of every builder not prepared yet; with the bucket off (the
    default) that only made an empty /tmp/tmp*tfds folder per call, never removed.
    """

    def initialize_from_bucket(self) -> None:
        return None


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of jaxadl's builders: not registered in TFDS, prepared from local files only.

    No checksums file beside the code: without `code_path = None`, TFDS looks for one through
    importlib_resources, which a TF-free environment does not have (and this builder downloads nothing).
    """

    code_path = None

"""TensorFlow-datasets without TensorFlow, shared by the GTSRB and lung builders.

What both need: the cache root, a quiet preparation, and a builder base that never looks for package
resources or for TFDS's cloud bucket (neither exists for a dataset prepared from local files).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import tensorflow_datasets as tfds

CACHE_ENV = "JAXADL_DATA_DIR"


def fingerprint(root: Path, files: Iterable[Path], *extra: object) -> str:
    """Short hash of a resolved root, each file's relative path, size and modification time, and options.

    Any edit of a source file changes its size or modification time and so the cache key; the files'
    bytes are not re-read on every load (seconds for GTSRB's 39k images).
    """
    h = hashlib.sha256(str(root.resolve()).encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"\0{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    for e in extra:
        h.update(f"\0{e!r}".encode())
    return h.hexdigest()[:16]


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

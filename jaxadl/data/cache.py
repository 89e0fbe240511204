"""The prepared-data cache shared by GTSRB and the lung sets: TensorFlow-datasets without TensorFlow.

One layout for every file-based source: ``<cache root>/<builder name>/<variant>_<fingerprint>/<version>/``
holds the TFDS array_record files and a plain .npz copy of their arrays. The fingerprint covers the
source path, each source file's path, size and modification time, and the options, so another source,
an edited file or another option never reuses a cache. Each source subclasses :class:`LocalBuilder`
once, at import, and goes through :func:`prepare` and :func:`load_arrays`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxadl.data.base import DatasetError

CACHE_ENV = "JAXADL_DATA_DIR"
NPZ_NAME = "jaxadl_arrays.npz"
_READ_BATCH = 8192  # examples fetched from array_record at once


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
def quiet_tfds() -> Iterator[None]:
    """Silence TFDS's progress bars, stdout banner and info logs; restore them after.

    jaxadl prints its own progress lines to stderr (see :func:`prepare`).
    """
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


class CacheConfig(tfds.core.BuilderConfig):
    """One prepared variant: named ``<variant>_<fingerprint>``, with the image size and options it holds."""

    def __init__(self, *, variant: str, key: str, image_size: int, **options: Any) -> None:
        super().__init__(name=f"{variant}_{key}", description=f"{variant}, source {key}")
        self.variant = variant
        self.image_size = image_size
        self.options = options


class LocalInfo(tfds.core.DatasetInfo):
    """DatasetInfo of a dataset that exists only on this machine.

    TFDS asks its cloud bucket for the info of every builder not prepared yet; with the bucket off (the
    default) that only made an empty /tmp/tmp*tfds folder per call, never removed.
    """

    def initialize_from_bucket(self) -> None:
        return None


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of jaxadl's builders: not registered in TFDS, prepared from local files only.

    ``source`` is what ``_split_generators`` reads and ``log(message)`` reports its progress; only a
    preparation needs them. No checksums file
    beside the code: without ``code_path = None``, TFDS looks for one through importlib_resources,
    which a TF-free environment does not have (and these builders download nothing).
    """

    code_path = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}

    def __init__(
        self, *, source: Any = None, log: Callable[[str], None] | None = None, **kwargs: Any
    ) -> None:
        self.source = source
        self.log = log
        super().__init__(**kwargs)

    def _download_and_prepare(self, dl_manager: Any, download_config: Any) -> None:
        start = time.perf_counter()
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        self.info.metadata["prepare_seconds"] = round(time.perf_counter() - start, 2)


def _open(
    builder_cls: type[LocalBuilder], config: CacheConfig, root: Path, source: Any = None, log: Any = None
) -> LocalBuilder:
    """A builder of `config` under the cache root `root`, quietly (TFDS logs while it looks for files)."""
    with quiet_tfds():
        return builder_cls(data_dir=root, config=config, source=source, log=log, file_format="array_record")


def _run_preparation(builder: LocalBuilder) -> None:
    """Write the builder's files; a DatasetError from the source comes out unwrapped.

    TFDS may wrap errors raised inside the example generator. When another process finished the same
    preparation first, its result is used.
    """
    try:
        with quiet_tfds():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    except DatasetError:
        raise
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, DatasetError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from e
        if not (builder.data_path / "dataset_info.json").exists():
            raise


def prepare(
    builder_cls: type[LocalBuilder],
    config: CacheConfig,
    *,
    source: Any,
    cache_dir: str | os.PathLike | None,
    log: Callable[[str], None] | None = None,
) -> tuple[LocalBuilder, bool]:
    """The prepared builder of `config` and whether it was prepared now (from `source`) or found cached.

    TFDS writes into a temporary folder renamed when complete, so a failed preparation leaves nothing
    that looks finished. `log(message)`, when given, reports the preparation's start, end and time.
    """
    root = default_cache_dir(cache_dir)
    builder = _open(builder_cls, config, root, source, log)
    if (builder.data_path / "dataset_info.json").exists():
        return builder, False
    t0 = time.perf_counter()
    _run_preparation(builder)
    if log is not None:
        log(f"done in {time.perf_counter() - t0:.1f} s: {builder.data_path}")
    return _open(builder_cls, config, root), True


def _read_split(source: Any, features: Iterable[str]) -> dict[str, np.ndarray]:
    """Every feature of one split as a stacked array, in the split's stored order."""
    n = len(source)
    out: dict[str, np.ndarray] = {}
    for lo in range(0, n, _READ_BATCH):
        batch = source.__getitems__(list(range(lo, min(n, lo + _READ_BATCH))))
        for name in features:
            column = np.stack([np.asarray(b[name]) for b in batch])
            if name not in out:
                out[name] = np.empty((n, *column.shape[1:]), column.dtype)
            out[name][lo : lo + len(batch)] = column
    return out


def _read_npz(npz: Path, keys: set[str]) -> dict[str, np.ndarray] | None:
    """The arrays of the .npz copy, or None when it is absent, incomplete or unreadable (with a warning)."""
    if not npz.exists():
        return None
    try:
        with np.load(npz) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"unreadable array copy {npz} ({e}); rebuilding it from the TFDS files", stacklevel=3)
        return None
    if not keys <= arrays.keys():
        warnings.warn(f"incomplete array copy {npz}; rebuilding it from the TFDS files", stacklevel=3)
        return None
    return arrays


def _write_npz(npz: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the .npz copy to a temporary name, then rename it; a read-only cache only warns."""
    tmp = npz.with_name(f".{NPZ_NAME}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, npz)
    except OSError as e:
        warnings.warn(f"could not write the array copy {npz} ({e}); loading stays slower", stacklevel=3)
    finally:
        tmp.unlink(missing_ok=True)


def load_arrays(builder: LocalBuilder) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Each split's features as arrays, and where they came from: "npz" or "array_record".

    TFDS parses each example in Python (~2-4 s for GTSRB's 39k images on 2 cores); the uncompressed
    npz beside the array_record files is a plain copy that loads in a fraction of a second. It lives
    inside the TFDS folder it mirrors, so it never outlives that folder.
    """
    splits, features = list(builder.info.splits.keys()), list(builder.info.features.keys())
    npz = builder.data_path / NPZ_NAME
    flat = _read_npz(npz, {f"{s}_{f}" for s in splits for f in features})
    read_from = "npz"
    if flat is None:
        sources = builder.as_data_source()
        flat = {f"{s}_{f}": a for s in splits for f, a in _read_split(sources[s], features).items()}
        _write_npz(npz, flat)
        read_from = "array_record"
    return {s: {f: flat[f"{s}_{f}"] for f in features} for s in splits}, read_from

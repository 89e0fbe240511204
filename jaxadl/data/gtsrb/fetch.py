"""Finding the GTSRB source folder: the one named, ``$JAXADL_GTSRB_DIR``, or the official archives downloaded."""

from __future__ import annotations

import os
import urllib.request
import zipfile
from pathlib import Path

from jaxadl.data.base import DATA_DIR_ARG, DatasetError
from jaxadl.data.gtsrb.sources import (
    ARCHIVES,
    DOWNLOAD_URL,
    TRAIN_ZIP,
    SourceFiles,
    help_text,
    log,
)

GTSRB_ENV = "JAXADL_GTSRB_DIR"


def download_archives(dest: Path) -> None:
    """Fetch the three official archives into ``dest`` (each via a .part file renamed when complete)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVES:
        final = dest / name
        if final.exists():
            continue
        part = dest / (name + ".part")
        url = DOWNLOAD_URL + name
        log(f"downloading {url} -> {final}")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            with zipfile.ZipFile(part) as zf:
                zf.infolist()
            os.replace(part, final)
        except (OSError, zipfile.BadZipFile) as e:
            part.unlink(missing_ok=True)
            raise DatasetError(f"could not download {url} ({e}). " + help_text(), arg=DATA_DIR_ARG) from e


def resolve_source(data_dir: str | os.PathLike | None, cache_dir: Path, download: bool) -> SourceFiles:
    """The directory to read: data_dir, else $JAXADL_GTSRB_DIR, else the downloaded archives.

    A folder the user named must hold the data: a typo is an error, never a silent download.
    """
    named = "{arg}" if data_dir is not None else f"${GTSRB_ENV}"  # how a message names the folder given
    given = data_dir if data_dir is not None else os.environ.get(GTSRB_ENV) or None
    if given is not None:
        root = Path(given).expanduser().absolute()
        if not root.exists():
            raise DatasetError(f"{named} {root} does not exist. " + help_text(), arg=DATA_DIR_ARG)
        if not root.is_dir():
            raise DatasetError(
                f"{named} {root} is not a directory; pass the directory that holds the data. " + help_text(),
                arg=DATA_DIR_ARG,
            )
        files = SourceFiles(root, named)
        if files.num_files:
            return files
        files.close()
        raise DatasetError(
            f"{named} {root} holds no GTSRB archives or image trees. " + help_text(), arg=DATA_DIR_ARG
        )
    dl_dir = cache_dir / "downloads" / "gtsrb"
    files = SourceFiles(dl_dir)
    if files.exists(TRAIN_ZIP) and (not download or all(files.exists(a) for a in ARCHIVES)):
        return files
    files.close()
    if not download:
        raise DatasetError(
            "GTSRB not found: no {arg} given, JAXADL_GTSRB_DIR is not set, and download=False. "
            + help_text(),
            arg=DATA_DIR_ARG,
        )
    download_archives(dl_dir)
    return SourceFiles(dl_dir)

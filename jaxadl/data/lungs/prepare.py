"""The lung sets' TFDS builders and their common path: named cases per split -> cache -> Dataset."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxadl.data.base import Dataset, DatasetError, Split
from jaxadl.data.cache import CacheConfig, LocalBuilder, LocalInfo, load_arrays, prepare

Example = tuple[str, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Cases:
    """What a lung builder prepares: case names per split and `example(split, name, index)` for each."""

    cases: dict[str, list[str]]
    example: Callable[[str, str, int], dict[str, np.ndarray]]


class LungBuilder(LocalBuilder, skip_registration=True):
    """(image, mask, index) examples per split, uint8 [S, S, 1]; ``source`` is a :class:`Cases`."""

    def _info(self) -> tfds.core.DatasetInfo:
        shape = (self.builder_config.image_size, self.builder_config.image_size, 1)
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
                "mask": tfds.features.Tensor(shape=shape, dtype=np.uint8),
                "index": tfds.features.Tensor(shape=(), dtype=np.int32),
            }
        )
        return LocalInfo(
            builder=self,
            features=features,
            description=f"jaxadl {self.name}",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[Example]]:
        if self.source is None:
            raise RuntimeError(f"{type(self).__name__} needs source= to prepare")
        if self.log is not None:
            n = sum(len(v) for v in self.source.cases.values())
            self.log(f"preparing {n} cases into {self.data_path.parent} ...")
        return {k: self._generate_examples(k, v) for k, v in self.source.cases.items() if v}

    def _generate_examples(self, split: str, names: list[str]) -> Iterator[Example]:
        for i, name in enumerate(names):
            yield f"{split}/{name}", self.source.example(split, name, i)


class JaxadlJsrt(LungBuilder, skip_registration=True):
    """JSRT radiographs with SCR lung masks (see :mod:`jaxadl.data.lungs.jsrt`)."""


class JaxadlLungFolder(LungBuilder, skip_registration=True):
    """Lung images and masks from a folder (see :mod:`jaxadl.data.lungs.folder`)."""


def lung_dataset(name: str, splits: dict[str, Split], meta: dict[str, Any]) -> Dataset:
    """A one-class segmentation Dataset of the splits; DatasetError when there is no training split."""
    if "train" not in splits:
        raise DatasetError(f"{name}: the training split is empty")
    return Dataset(name, splits["train"], splits.get("val"), splits.get("test"), num_classes=1, meta=meta)


def prepare_cases(
    name: str,
    builder_cls: type[LungBuilder],
    config: CacheConfig,
    *,
    root: Path,
    cases: Cases,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    **meta: Any,
) -> Dataset:
    """Build (once) and read back the cached examples of `cases`, each split in its listed order.

    `cases.example` is only called when nothing is cached yet; `meta` joins the source, size, cache
    folder and case names in the Dataset's meta.
    """
    log = (lambda msg: print(f"{name}: {msg}", file=sys.stderr, flush=True)) if progress else None
    builder, _ = prepare(builder_cls, config, source=cases, cache_dir=cache_dir, log=log)
    arrays, _ = load_arrays(builder)
    out: dict[str, Split] = {}
    for split, features in arrays.items():
        order = np.argsort(features["index"])
        out[split] = Split(features["image"][order], features["mask"][order])
    meta = {
        "source": str(root.resolve()),
        "image_size": config.image_size,
        "cache": str(builder.data_dir),
        "cases": {k: list(v) for k, v in cases.cases.items()},
        **meta,
    }
    return lung_dataset(name, out, meta)

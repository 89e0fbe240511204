"""The GTSRB TFDS builder: decoded fixed-size uint8 images with label and track id, as array_record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxadl.data.cache import CacheConfig, LocalBuilder, LocalInfo
from jaxadl.data.gtsrb.decode import decode_image
from jaxadl.data.gtsrb.sources import Record, SourceFiles, plan


def config_name(image_size: int, crop: str) -> str:
    """The variant name for an image size and crop mode, e.g. ``s28_roi``."""
    return f"s{image_size}_{crop}"


def gtsrb_config(files: SourceFiles, image_size: int, crop: str) -> CacheConfig:
    """The cache entry of one source, image size and crop mode, e.g. ``s28_roi_<source key>``."""
    return CacheConfig(
        variant=config_name(image_size, crop), key=files.key(), image_size=image_size, crop=crop
    )


class JaxadlGtsrb(LocalBuilder, skip_registration=True):
    """GTSRB decoded to fixed-size uint8 images with label and track id, written as array_record.

    ``source`` (a :class:`SourceFiles`) is needed only to prepare; reading a prepared one needs none.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return LocalInfo(
            builder=self,
            description="GTSRB traffic signs (43 classes), decoded and resized for jaxadl.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                    "track": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
            homepage="https://benchmark.ini.rub.de/gtsrb_dataset.html",
            citation="Stallkamp et al., Man vs. computer: Benchmarking machine learning algorithms for "
            "traffic sign recognition, Neural Networks 32, 2012.",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        if self.source is None:
            raise RuntimeError("JaxadlGtsrb needs source= to prepare")
        found = plan(self.source)
        self.info.metadata.update(
            source=str(self.source.root),
            source_layout=found.layout,
            track_source=found.track_source,
            notes=found.notes,
        )
        if self.log is not None:
            n = len(found.train) + len(found.test or [])
            where = self.data_path.parent
            self.log(
                f"preparing {n} images ({self.builder_config.variant}) from {self.source.root} into {where} ..."
            )
        splits = {"train": self._generate_examples(found.train)}
        if found.test is not None:
            splits["test"] = self._generate_examples(found.test)
        return splits

    def _generate_examples(self, records: list[Record]) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg = self.builder_config
        for i, rec in enumerate(records):
            img = decode_image(self.source, rec, cfg.image_size, cfg.options["crop"])
            yield i, {"image": img, "label": rec.label, "track": rec.track}

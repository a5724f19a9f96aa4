"""What a TensorFlow network is, as the record the artifact manifest stores, and the builder.

An artifact is rebuilt from this record alone (never from the catalog)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from boxtune.engines.tensorflow.anchors import grid_anchors
from boxtune.engines.tensorflow.postprocess import PostprocessConfig
from boxtune.engines.tensorflow.ssdlite_mobilenet_v2 import (
    SSDLiteConfig,
    build_ssdlite_mobilenet_v2,
)
from boxtune.errors import ModelError

SSDLITE_MOBILENET_V2 = "ssdlite_mobilenet_v2"
ARCHITECTURES = (SSDLITE_MOBILENET_V2,)
# Batch-norm decay: the API's 0.9997 keeps pretrained statistics steady through a short
# fine-tune; from random weights the statistics must move, so they follow the batches faster.
PRETRAINED_BN_MOMENTUM = 0.9997
RANDOM_INIT_BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class TFArchitecture:
    """``num_classes`` counts foreground classes (the network adds a background column)."""

    name: str
    image_size: int
    num_classes: int
    bn_momentum: float = PRETRAINED_BN_MOMENTUM

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "framework": "tensorflow"}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str) -> TFArchitecture:
        record = manifest.get("architecture")
        try:
            if not isinstance(record, dict) or record.get("name") not in ARCHITECTURES:
                raise TypeError(f"unknown architecture record {record!r}")
            return cls(
                name=record["name"],
                image_size=int(record["image_size"]),
                num_classes=int(record["num_classes"]),
                bn_momentum=float(record.get("bn_momentum", PRETRAINED_BN_MOMENTUM)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"the manifest's architecture is not a TensorFlow architecture record ({exc})",
                where=where,
                hint="the artifact is damaged or was written by another boxtune; export it again",
            ) from exc


@dataclass
class SSDNetwork:
    """A Keras SSD network with what turns its outputs into boxes."""

    model: Any  # keras.Model: preprocessed images -> (box codes, class logits)
    anchors: np.ndarray  # float32 [A, 4] normalised yxyx
    postprocess: PostprocessConfig
    image_size: int
    num_classes: int


def build_network(arch: TFArchitecture) -> SSDNetwork:
    if arch.name != SSDLITE_MOBILENET_V2:
        raise ModelError(
            f"unknown TensorFlow architecture {arch.name!r}",
            hint=f"this boxtune builds {', '.join(ARCHITECTURES)}",
        )
    config = SSDLiteConfig(arch.image_size, arch.num_classes, bn_momentum=arch.bn_momentum)
    model, grids = build_ssdlite_mobilenet_v2(config)
    shape = (arch.image_size, arch.image_size)
    return SSDNetwork(
        model=model,
        anchors=grid_anchors(grids, config.anchors, shape),
        postprocess=PostprocessConfig(),
        image_size=arch.image_size,
        num_classes=arch.num_classes,
    )


def preprocess(images):
    """uint8 RGB ``[B, S, S, 3]`` -> float32 in [-1, 1] (the API's MobileNet preprocessing,
    the graph's own ``Preprocessor/mul`` and ``sub`` constants)."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0

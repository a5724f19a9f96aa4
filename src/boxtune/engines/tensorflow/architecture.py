"""What a TensorFlow network is, as the record the artifact manifest stores, and the builder.

An artifact is rebuilt from this record alone (never from the catalog)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from boxtune.engines.tensorflow.anchors import grid_anchors
from boxtune.engines.tensorflow.postprocess import PostprocessConfig
from boxtune.engines.tensorflow.ssd_loss import SSDLossConfig
from boxtune.engines.tensorflow.ssdlite_mobilenet_v2 import (
    SSDLiteConfig,
    build_ssdlite_mobilenet_v2,
    is_class_predictor,
    is_head_layer,
)
from boxtune.engines.tensorflow.zoo.configs import ZOO_CONFIGS, is_zoo_architecture
from boxtune.engines.tensorflow.zoo.preprocessing import Normalization, normalize
from boxtune.errors import ModelError

SSDLITE_MOBILENET_V2 = "ssdlite_mobilenet_v2"
ARCHITECTURES = (SSDLITE_MOBILENET_V2, *ZOO_CONFIGS)
# Batch-norm decay: the API's 0.9997 keeps pretrained statistics steady through a short
# fine-tune (the zoo models use their configs' decay, 0.997 or 0.99). From random weights the
# statistics must follow the batches within a short run: at 0.99 the fpnlite zoo model's
# inference-mode loss on its own training batch stayed at 1.79 after 150 steps while the
# training-mode loss reached 0.003; at 0.9 (PyTorch's default) both were 0.003.
PRETRAINED_BN_MOMENTUM = 0.9997
RANDOM_INIT_BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class TFArchitecture:
    """``num_classes`` counts foreground classes (the network adds a background column)."""

    name: str
    image_size: int
    num_classes: int
    bn_momentum: float = PRETRAINED_BN_MOMENTUM
    # The zoo models' box coder scales as their checkpoint's pipeline.config has them (None:
    # the architecture's own).
    box_coder_scales: tuple[float, float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        record = {**asdict(self), "framework": "tensorflow"}
        if self.box_coder_scales is None:
            del record["box_coder_scales"]
        else:
            record["box_coder_scales"] = list(self.box_coder_scales)
        return record

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
                box_coder_scales=_scales(record.get("box_coder_scales")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"the manifest's architecture is not a TensorFlow architecture record ({exc})",
                where=where,
                hint="the artifact is damaged or was written by another boxtune; export it again",
            ) from exc


def _scales(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    y, x, h, w = (float(v) for v in value)
    return y, x, h, w


@dataclass
class SSDNetwork:
    """A Keras SSD network with what feeds it and what turns its outputs into boxes.

    ``head_layers`` are the top-level layers train_only_top_layer trains (the box predictor);
    ``class_layers`` the layers that output class logits (what a new label map replaces);
    ``checkpoint_map`` (zoo models) maps each zoo checkpoint key to its variable.
    """

    model: Any  # keras.Model: preprocessed images -> (box codes, class logits)
    anchors: np.ndarray  # float32 [A, 4] normalised yxyx
    postprocess: PostprocessConfig
    image_size: int
    num_classes: int
    normalization: Normalization = "mobilenet"
    loss: SSDLossConfig = field(default_factory=SSDLossConfig)
    head_layers: tuple[Any, ...] = ()
    class_layers: tuple[Any, ...] = ()
    checkpoint_map: dict[str, Any] = field(default_factory=dict)

    def preprocess(self, images):
        """uint8 RGB ``[B, S, S, 3]`` -> the feature extractor's float input."""
        return normalize(images, self.normalization)


def build_network(arch: TFArchitecture) -> SSDNetwork:
    if is_zoo_architecture(arch.name):
        from boxtune.engines.tensorflow.zoo.network import build_zoo_network

        return build_zoo_network(arch)
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
        head_layers=tuple(layer for layer in model.layers if is_head_layer(layer.name)),
        class_layers=tuple(layer for layer in model.layers if is_class_predictor(layer.name)),
    )

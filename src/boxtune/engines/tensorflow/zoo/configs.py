"""One record per TF2 Detection Model Zoo model: the facts of its ``pipeline.config`` that shape
the network (from ``configs/tf2/<zoo_name>.config`` of the TF Object Detection API, checked
against the zoo tarballs' own configs; see ``tests/engines/tensorflow/zoo/data``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from boxtune.engines.tensorflow.zoo.box_predictor import Activation
from boxtune.engines.tensorflow.zoo.preprocessing import Normalization, Resizer
from boxtune.errors import ModelError

BackboneKind = Literal["resnet_v1", "mobilenet_v1", "mobilenet_v2", "efficientnet"]
NeckKind = Literal["fpn", "bifpn"]

ZOO_BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)
# The pipeline.config inside the EfficientDet tarballs decodes with 1, 1, 1, 1 (the published
# configs/tf2 files say 10, 10, 5, 5): the zoo checkpoints were trained with the former.
EFFICIENTDET_TARBALL_BOX_CODER_SCALES = (1.0, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class AnchorConfig:
    """``multiscale_anchor_generator``."""

    min_level: int = 3
    max_level: int = 7
    anchor_scale: float = 4.0
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)
    scales_per_octave: int = 2

    @property
    def anchors_per_location(self) -> int:
        return len(self.aspect_ratios) * self.scales_per_octave


@dataclass(frozen=True)
class PredictorConfig:
    """``weight_shared_convolutional_box_predictor``."""

    depth: int
    num_layers_before_predictor: int
    use_depthwise: bool
    share_prediction_tower: bool
    kernel_size: int = 3
    class_prediction_bias_init: float = -4.6
    # EfficientDet: no background column, swish, biased tower convolutions (force_use_bias)
    add_background_class: bool = True
    activation: Activation = "relu6"
    tower_use_bias: bool = False


@dataclass(frozen=True)
class ZooModelConfig:
    zoo_name: str
    backbone: BackboneKind
    backbone_variant: str  # "50" for ResNet-50, "b0" for EfficientNet-B0, "" otherwise
    neck: NeckKind
    neck_depth: int  # FPN additional_layer_depth or BiFPN num_filters
    image_size: int
    normalization: Normalization
    resizer: Resizer
    predictor: PredictorConfig
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    neck_iterations: int = 0  # BiFPN repeats
    neck_use_depthwise: bool = False
    box_coder_scales: tuple[float, float, float, float] = ZOO_BOX_CODER_SCALES
    nms_iou_threshold: float = 0.6
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    bn_decay: float = 0.997


_RESNET_PREDICTOR = PredictorConfig(256, 4, use_depthwise=False, share_prediction_tower=False)
_FPNLITE_PREDICTOR = PredictorConfig(128, 4, use_depthwise=True, share_prediction_tower=True)


def _resnet(depth: int, size: int) -> ZooModelConfig:
    return ZooModelConfig(
        zoo_name=f"ssd_resnet{depth}_v1_fpn_{size}x{size}_coco17_tpu-8",
        backbone="resnet_v1",
        backbone_variant=str(depth),
        neck="fpn",
        neck_depth=256,
        image_size=size,
        normalization="resnet",
        resizer="fixed",
        predictor=_RESNET_PREDICTOR,
    )


def _fpnlite(size: int) -> ZooModelConfig:
    return ZooModelConfig(
        zoo_name=f"ssd_mobilenet_v2_fpnlite_{size}x{size}_coco17_tpu-8",
        backbone="mobilenet_v2",
        backbone_variant="",
        neck="fpn",
        neck_depth=128,
        neck_use_depthwise=True,
        image_size=size,
        normalization="mobilenet",
        resizer="fixed",
        predictor=_FPNLITE_PREDICTOR,
    )


def _efficientdet(level: int, size: int, filters: int, iterations: int, layers: int):
    return ZooModelConfig(
        zoo_name=f"efficientdet_d{level}_coco17_tpu-32",
        backbone="efficientnet",
        backbone_variant=f"b{level}",
        neck="bifpn",
        neck_depth=filters,
        neck_iterations=iterations,
        image_size=size,
        normalization="efficientnet",
        resizer="keep_aspect_pad",
        predictor=PredictorConfig(
            filters,
            layers,
            use_depthwise=True,
            share_prediction_tower=False,
            add_background_class=False,
            activation="swish",
            tower_use_bias=True,
        ),
        anchors=AnchorConfig(scales_per_octave=3),
        box_coder_scales=EFFICIENTDET_TARBALL_BOX_CODER_SCALES,
        nms_iou_threshold=0.5,
        focal_gamma=1.5,
        bn_decay=0.99,
    )


ZOO_CONFIGS: dict[str, ZooModelConfig] = {
    config.zoo_name: config
    for config in (
        _resnet(50, 640),
        _resnet(50, 1024),
        _resnet(101, 640),
        _resnet(101, 1024),
        _resnet(152, 640),
        _resnet(152, 1024),
        ZooModelConfig(
            zoo_name="ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8",
            backbone="mobilenet_v1",
            backbone_variant="",
            neck="fpn",
            neck_depth=256,
            image_size=640,
            normalization="mobilenet",
            resizer="fixed",
            predictor=_RESNET_PREDICTOR,
        ),
        _fpnlite(320),
        _fpnlite(640),
        _efficientdet(0, 512, 64, 3, 3),
        _efficientdet(1, 640, 88, 4, 3),
        _efficientdet(2, 768, 112, 5, 3),
        _efficientdet(3, 896, 160, 6, 4),
    )
}


def is_zoo_architecture(name: str) -> bool:
    return name in ZOO_CONFIGS


def zoo_config(name: str) -> ZooModelConfig:
    try:
        return ZOO_CONFIGS[name]
    except KeyError:
        raise ModelError(
            f"unknown TF2 zoo model {name!r}",
            hint=f"the zoo models boxtune builds: {', '.join(ZOO_CONFIGS)}",
        ) from None

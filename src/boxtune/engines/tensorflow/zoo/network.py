"""Assembles a TF2 zoo detector from its config record: backbone -> neck -> box predictor, one
functional Keras model, with the map from every zoo checkpoint key to its variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import keras

from boxtune.engines.tensorflow.postprocess import PostprocessConfig
from boxtune.engines.tensorflow.ssd_loss import SSDLossConfig
from boxtune.engines.tensorflow.zoo import anchors as zoo_anchors
from boxtune.engines.tensorflow.zoo.bifpn import bifpn_checkpoint_map, build_bifpn
from boxtune.engines.tensorflow.zoo.box_predictor import (
    box_predictor_checkpoint_map,
    build_weight_shared_box_predictor,
    class_head_layers,
)
from boxtune.engines.tensorflow.zoo.configs import ZooModelConfig, zoo_config
from boxtune.engines.tensorflow.zoo.efficientnet import (
    build_efficientnet_backbone,
    efficientnet_backbone_checkpoint_map,
)
from boxtune.engines.tensorflow.zoo.fpn import build_fpn, fpn_checkpoint_map
from boxtune.engines.tensorflow.zoo.mobilenet_v1 import (
    build_mobilenet_v1_backbone,
    mobilenet_v1_backbone_checkpoint_map,
)
from boxtune.engines.tensorflow.zoo.mobilenet_v2 import (
    build_mobilenet_v2_backbone,
    mobilenet_v2_backbone_checkpoint_map,
)
from boxtune.engines.tensorflow.zoo.resnet_v1 import (
    build_resnet_v1_backbone,
    resnet_v1_backbone_checkpoint_map,
)

if TYPE_CHECKING:
    from boxtune.engines.tensorflow.architecture import SSDNetwork, TFArchitecture

VariableMap = dict[str, keras.Variable]
Part = tuple[keras.Model, VariableMap]


def _resnet_v1(config: ZooModelConfig, bn_momentum: float, size: int) -> Part:
    model = build_resnet_v1_backbone(
        depth=int(config.backbone_variant),
        bn_momentum=bn_momentum,
        min_level=config.anchors.min_level,
        input_shape=(size, size, 3),
        name="backbone",
    )
    return model, resnet_v1_backbone_checkpoint_map(model)


def _mobilenet_v1(config: ZooModelConfig, bn_momentum: float, size: int) -> Part:
    model = build_mobilenet_v1_backbone(
        bn_momentum=bn_momentum,
        min_level=config.anchors.min_level,
        input_shape=(size, size, 3),
        name="backbone",
    )
    return model, mobilenet_v1_backbone_checkpoint_map(model)


def _mobilenet_v2(config: ZooModelConfig, bn_momentum: float, size: int) -> Part:
    model = build_mobilenet_v2_backbone(
        bn_momentum=bn_momentum,
        min_level=config.anchors.min_level,
        input_shape=(size, size, 3),
        name="backbone",
    )
    return model, mobilenet_v2_backbone_checkpoint_map(model)


def _efficientnet(config: ZooModelConfig, bn_momentum: float, size: int) -> Part:
    model = build_efficientnet_backbone(
        variant=config.backbone_variant,
        min_level=config.anchors.min_level,
        image_size=size,
        bn_momentum=bn_momentum,
        name="backbone",
    )
    return model, efficientnet_backbone_checkpoint_map(model)


BACKBONES: dict[str, Callable[[ZooModelConfig, float, int], Part]] = {
    "resnet_v1": _resnet_v1,
    "mobilenet_v1": _mobilenet_v1,
    "mobilenet_v2": _mobilenet_v2,
    "efficientnet": _efficientnet,
}


def _neck(config: ZooModelConfig, channels: list[int], bn_momentum: float) -> Part:
    levels = {"min_level": config.anchors.min_level, "max_level": config.anchors.max_level}
    if config.neck == "bifpn":
        model = build_bifpn(
            input_channels=channels,
            filters=config.neck_depth,
            iterations=config.neck_iterations,
            bn_momentum=bn_momentum,
            name="neck",
            **levels,
        )
        return model, bifpn_checkpoint_map(model)
    model = build_fpn(
        input_channels=channels,
        depth=config.neck_depth,
        use_depthwise=config.neck_use_depthwise,
        bn_momentum=bn_momentum,
        name="neck",
        **levels,
    )
    return model, fpn_checkpoint_map(model)


def _merge(*maps: VariableMap) -> VariableMap:
    merged: VariableMap = {}
    for mapping in maps:
        clash = merged.keys() & mapping.keys()
        if clash:
            raise AssertionError(f"two parts claim the checkpoint keys {sorted(clash)[:3]}")
        merged.update(mapping)
    return merged


def build_zoo_network(arch: TFArchitecture) -> SSDNetwork:
    from boxtune.engines.tensorflow.architecture import SSDNetwork

    config = zoo_config(arch.name)
    size = arch.image_size
    backbone, backbone_map = BACKBONES[config.backbone](config, arch.bn_momentum, size)
    images = keras.Input((size, size, 3), name="preprocessed_inputs")
    endpoints = backbone(images)
    neck, neck_map = _neck(config, [int(e.shape[-1]) for e in endpoints], arch.bn_momentum)
    features = neck(endpoints)
    predictor_config = config.predictor
    predictor = build_weight_shared_box_predictor(
        feature_channels=[int(f.shape[-1]) for f in features],
        num_classes=arch.num_classes,
        depth=predictor_config.depth,
        num_layers_before_predictor=predictor_config.num_layers_before_predictor,
        kernel_size=predictor_config.kernel_size,
        use_depthwise=predictor_config.use_depthwise,
        share_prediction_tower=predictor_config.share_prediction_tower,
        anchors_per_location=config.anchors.anchors_per_location,
        class_prediction_bias_init=predictor_config.class_prediction_bias_init,
        bn_momentum=arch.bn_momentum,
        add_background_class=predictor_config.add_background_class,
        activation=predictor_config.activation,
        tower_use_bias=predictor_config.tower_use_bias,
        name="box_predictor",
    )
    codes, logits = predictor(features)
    model = keras.Model(images, [codes, logits], name=config.zoo_name)
    scales = arch.box_coder_scales or config.box_coder_scales
    anchors = zoo_anchors.multiscale_anchors(
        [(int(f.shape[1]), int(f.shape[2])) for f in features], config.anchors, (size, size)
    )
    return SSDNetwork(
        model=model,
        anchors=anchors,
        postprocess=PostprocessConfig(
            iou_threshold=config.nms_iou_threshold,
            box_coder_scales=scales,
            background_column=predictor_config.add_background_class,
        ),
        image_size=size,
        num_classes=arch.num_classes,
        normalization=config.normalization,
        loss=SSDLossConfig(
            scales=scales,
            focal_gamma=config.focal_gamma,
            focal_alpha=config.focal_alpha,
            normalize_loc_loss_by_codesize=True,
            background_column=predictor_config.add_background_class,
            encode_background_as_zeros=True,  # all 13 pipeline.configs
        ),
        head_layers=(predictor,),
        class_layers=tuple(class_head_layers(predictor)),
        checkpoint_map=_merge(backbone_map, neck_map, box_predictor_checkpoint_map(predictor)),
    )

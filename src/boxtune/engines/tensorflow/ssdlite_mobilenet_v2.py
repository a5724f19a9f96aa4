"""SSDLite with a MobileNetV2 feature extractor, layer for layer as the TF Object Detection API
builds it (``ssd_mobilenet_v2_feature_extractor`` with ``use_depthwise``, and the convolutional
box predictor with depthwise heads), in Keras 3.

Every Keras layer is named after the API's variable scope with ``/`` written as ``.`` (Keras
forbids ``/``), e.g. ``FeatureExtractor.MobilenetV2.expanded_conv_3.expand.BatchNorm``, so that
pretrained weights map by name (:mod:`boxtune.engines.tensorflow.frozen_graph`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import layers

from boxtune.engines.tensorflow.anchors import SSDAnchorConfig, anchors_per_location

BACKBONE = "FeatureExtractor/MobilenetV2"
# (expansion, output channels, stride) of expanded_conv, expanded_conv_1, ... expanded_conv_16
INVERTED_RESIDUALS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)  # fmt: skip
FIRST_FEATURE_BLOCK = 13  # the first feature map is expanded_conv_13's expansion (stride 16)
EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)  # SSD's extra feature maps after Conv_1
BN_EPSILON = 1e-3
# The API's conv_hyperparams initializer for every SSDLite conv
INITIALIZER_STDDEV = 0.03


@dataclass(frozen=True)
class SSDLiteConfig:
    """What shapes the network: input size, classes (without background), batch-norm decay."""

    image_size: int
    num_classes: int
    bn_momentum: float = 0.9997  # the API's batch_norm decay
    anchors: SSDAnchorConfig = field(default_factory=SSDAnchorConfig)


def keras_name(scope: str) -> str:
    return scope.replace("/", ".")


def is_head_layer(name: str) -> bool:
    """The box predictor (box and class branches): what train_only_top_layer trains."""
    return name.startswith("BoxPredictor_")


def is_class_predictor(name: str) -> bool:
    """The 1x1 convolutions that output class logits: what a new label map replaces."""
    return is_head_layer(name) and name.endswith(".ClassPredictor")


class _Builder:
    def __init__(self, config: SSDLiteConfig):
        self.config = config

    def initializer(self) -> keras.initializers.Initializer:
        return keras.initializers.TruncatedNormal(stddev=INITIALIZER_STDDEV)

    def batch_norm(self, x, scope: str, relu6: bool = True):
        x = layers.BatchNormalization(
            momentum=self.config.bn_momentum,
            epsilon=BN_EPSILON,
            name=keras_name(f"{scope}/BatchNorm"),
        )(x)
        return layers.ReLU(6.0, name=keras_name(f"{scope}/Relu6"))(x) if relu6 else x

    def conv(self, x, filters: int, scope: str, *, kernel: int = 1, stride: int = 1, relu6=True):
        x = layers.Conv2D(
            filters,
            kernel,
            stride,
            padding="same",
            use_bias=False,
            kernel_initializer=self.initializer(),
            name=keras_name(scope),
        )(x)
        return self.batch_norm(x, scope, relu6)

    def depthwise(self, x, scope: str, *, stride: int = 1):
        x = layers.DepthwiseConv2D(
            3,
            stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=self.initializer(),
            name=keras_name(scope),
        )(x)
        return self.batch_norm(x, scope)

    def predictor(self, x, filters: int, scope: str):
        return layers.Conv2D(
            filters,
            1,
            padding="same",
            kernel_initializer=self.initializer(),
            bias_initializer="zeros",
            name=keras_name(scope),
        )(x)

    def features(self, images) -> list:
        """The six SSD feature maps (strides 16, 32, 64, 128, 256, 512 for a 300 px input)."""
        x = self.conv(images, 32, f"{BACKBONE}/Conv", kernel=3, stride=2)
        features = []
        for index, (expansion, channels, stride) in enumerate(INVERTED_RESIDUALS):
            scope = f"{BACKBONE}/expanded_conv" + (f"_{index}" if index else "")
            shortcut = x
            if expansion != 1:
                x = self.conv(x, x.shape[-1] * expansion, f"{scope}/expand")
                if index == FIRST_FEATURE_BLOCK:
                    features.append(x)
            x = self.depthwise(x, f"{scope}/depthwise", stride=stride)
            x = self.conv(x, channels, f"{scope}/project", relu6=False)
            if stride == 1 and shortcut.shape[-1] == channels:
                x = layers.Add(name=keras_name(f"{scope}/add"))([shortcut, x])
        x = self.conv(x, 1280, f"{BACKBONE}/Conv_1")
        features.append(x)
        for offset, depth in enumerate(EXTRA_LAYER_DEPTHS):
            n = offset + 2
            x = self.conv(x, depth // 2, f"{BACKBONE}/layer_19_1_Conv2d_{n}_1x1_{depth // 2}")
            scope = f"{BACKBONE}/layer_19_2_Conv2d_{n}_3x3_s2_{depth}"
            x = self.depthwise(x, f"{scope}_depthwise", stride=2)
            x = self.conv(x, depth, scope)
            features.append(x)
        return features

    def box_predictor(self, features: list):
        """Per level: depthwise 3x3 + BN + ReLU6, then a 1x1 conv, for boxes and classes."""
        codes, logits = [], []
        columns = self.config.num_classes + 1  # column 0 is the background
        counts = anchors_per_location(self.config.anchors)
        for level, (feature, count) in enumerate(zip(features, counts, strict=True)):
            scope = f"BoxPredictor_{level}"
            locations = feature.shape[1] * feature.shape[2] * count
            box = self.depthwise(feature, f"{scope}/BoxEncodingPredictor_depthwise")
            box = self.predictor(box, count * 4, f"{scope}/BoxEncodingPredictor")
            codes.append(layers.Reshape((locations, 4), name=f"{scope}.box_codes")(box))
            cls = self.depthwise(feature, f"{scope}/ClassPredictor_depthwise")
            cls = self.predictor(cls, count * columns, f"{scope}/ClassPredictor")
            logits.append(layers.Reshape((locations, columns), name=f"{scope}.logits")(cls))
        return (
            layers.Concatenate(axis=1, name="box_codes")(codes),
            layers.Concatenate(axis=1, name="class_logits")(logits),
        )


def build_ssdlite_mobilenet_v2(config: SSDLiteConfig) -> tuple[keras.Model, list[tuple[int, int]]]:
    """The network (preprocessed float images ``[B, S, S, 3]`` in [-1, 1] -> box codes
    ``[B, A, 4]`` and class logits ``[B, A, C + 1]``) and its feature-map grid sizes."""
    builder = _Builder(config)
    images = keras.Input((config.image_size, config.image_size, 3), name="preprocessed_images")
    features = builder.features(images)
    codes, logits = builder.box_predictor(features)
    model = keras.Model(images, [codes, logits], name="ssdlite_mobilenet_v2")
    grids = [(int(f.shape[1]), int(f.shape[2])) for f in features]
    return model, grids

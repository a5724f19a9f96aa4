"""Image preprocessing of the TF2 zoo models, in the order ``SSDMetaArch.preprocess`` applies it:
normalise first, then resize (so the padding of a keep-aspect-ratio resizer is 0 in normalised
space, not black), with TF1's bilinear resize (no half-pixel centres), which the Object
Detection API uses and which ``tf.image.resize`` does not reproduce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

Normalization = Literal["mobilenet", "resnet", "efficientnet"]
Resizer = Literal["fixed", "keep_aspect_pad"]

# ssd_resnet_v1_fpn_keras_feature_extractor.preprocess: the ImageNet channel means (0..255)
RESNET_CHANNEL_MEANS = (123.68, 116.779, 103.939)
# ssd_efficientnet_bifpn_feature_extractor.preprocess: offset and scale on 0..1 values
EFFICIENTNET_CHANNEL_OFFSET = (0.485, 0.456, 0.406)
EFFICIENTNET_CHANNEL_SCALE = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ZooPreprocessing:
    normalization: Normalization
    resizer: Resizer
    image_size: int


def normalize(images: tf.Tensor, normalization: Normalization) -> tf.Tensor:
    """float32 RGB values 0..255 ``[B, H, W, 3]`` -> the feature extractor's input range."""
    images = tf.cast(images, tf.float32)
    if normalization == "mobilenet":
        return (2.0 / 255.0) * images - 1.0
    if normalization == "resnet":
        return images - tf.constant([[RESNET_CHANNEL_MEANS]], tf.float32)
    offset = tf.constant([[EFFICIENTNET_CHANNEL_OFFSET]], tf.float32)
    scale = tf.constant([[EFFICIENTNET_CHANNEL_SCALE]], tf.float32)
    return (images / 255.0 - offset) / scale


def resized_shape(height: int, width: int, config: ZooPreprocessing) -> tuple[int, int]:
    """The image's size inside the network input (the rest is padding)."""
    if config.resizer == "fixed":
        return config.image_size, config.image_size
    scale = config.image_size / max(height, width)
    return round(height * scale), round(width * scale)


def preprocess_image(image, config: ZooPreprocessing) -> tuple[tf.Tensor, tuple[int, int, int]]:
    """One uint8 image ``[H, W, 3]`` -> (network input ``[1, S, S, 3]``, true image shape), as
    ``detection_model.preprocess`` returns them."""
    image = tf.convert_to_tensor(image)
    height, width = int(image.shape[0]), int(image.shape[1])
    normalized = normalize(image[None], config.normalization)
    new_height, new_width = resized_shape(height, width, config)
    resized = tf.compat.v1.image.resize_images(normalized, [new_height, new_width])
    size = config.image_size
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, size, size)
    return padded, (new_height, new_width, 3)

"""The TF Object Detection API's ``faster_rcnn_box_coder``: boxes relative to anchors.

Boxes and anchors are ``[..., 4]`` corner boxes ``[ymin, xmin, ymax, xmax]`` in normalised
coordinates (the API's order). A code is ``[ty, tx, th, tw]`` scaled by ``scales`` (the SSD
configs use 10, 10, 5, 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

DEFAULT_SCALES = (10.0, 10.0, 5.0, 5.0)
_EPSILON = 1e-8  # the API's guard against log(0) for degenerate boxes


def _centers_and_sizes(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height, width = ymax - ymin, xmax - xmin
    return ymin + height / 2.0, xmin + width / 2.0, height, width


def encode(boxes: tf.Tensor, anchors: tf.Tensor, scales: Sequence[float] = DEFAULT_SCALES):
    """Codes of ``boxes`` against ``anchors`` (same shape, broadcastable)."""
    ycenter_a, xcenter_a, ha, wa = _centers_and_sizes(anchors)
    ycenter, xcenter, h, w = _centers_and_sizes(boxes)
    ha, wa = ha + _EPSILON, wa + _EPSILON
    h, w = h + _EPSILON, w + _EPSILON
    ty = (ycenter - ycenter_a) / ha * scales[0]
    tx = (xcenter - xcenter_a) / wa * scales[1]
    th = tf.math.log(h / ha) * scales[2]
    tw = tf.math.log(w / wa) * scales[3]
    return tf.stack([ty, tx, th, tw], axis=-1)


def decode(codes: tf.Tensor, anchors: tf.Tensor, scales: Sequence[float] = DEFAULT_SCALES):
    """Corner boxes from ``codes`` against ``anchors`` (the inverse of :func:`encode`)."""
    ycenter_a, xcenter_a, ha, wa = _centers_and_sizes(anchors)
    ty, tx, th, tw = tf.unstack(codes, axis=-1)
    ty, tx, th, tw = ty / scales[0], tx / scales[1], th / scales[2], tw / scales[3]
    w = tf.exp(tw) * wa
    h = tf.exp(th) * ha
    ycenter = ty * ha + ycenter_a
    xcenter = tx * wa + xcenter_a
    return tf.stack(
        [ycenter - h / 2.0, xcenter - w / 2.0, ycenter + h / 2.0, xcenter + w / 2.0], axis=-1
    )

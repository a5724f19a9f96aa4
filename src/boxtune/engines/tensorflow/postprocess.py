"""SSD post-processing as the TF Object Detection API configures it: decode the box codes
against the anchors, sigmoid scores without the background column, clip to the image, then
per-class non-maximum suppression (IoU 0.6, at most 100 boxes per class and 100 in all)."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from boxtune.engines.tensorflow import box_coder


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections_per_class: int = 100
    max_total_detections: int = 100
    box_coder_scales: tuple[float, float, float, float] = box_coder.DEFAULT_SCALES


def decode_scores(class_logits: tf.Tensor) -> tf.Tensor:
    """Per-class sigmoid scores ``[B, A, C]`` (the background column dropped)."""
    return tf.sigmoid(class_logits[:, :, 1:])


def decode_boxes(box_codes: tf.Tensor, anchors: tf.Tensor, config: PostprocessConfig):
    """Normalised ``[ymin, xmin, ymax, xmax]`` boxes ``[B, A, 4]``, clipped to the image."""
    boxes = box_coder.decode(box_codes, anchors[None], config.box_coder_scales)
    return tf.clip_by_value(boxes, 0.0, 1.0)


def detect(box_codes, class_logits, anchors, config: PostprocessConfig) -> dict[str, tf.Tensor]:
    """The final detections: ``boxes`` [B, K, 4] normalised yxyx, ``scores`` [B, K],
    ``classes`` [B, K] (0-based int32), ``num_detections`` [B] int32, K = max_total_detections
    (rows past num_detections are padding), and ``anchor_indices`` [B, K] of each box."""
    boxes = decode_boxes(box_codes, anchors, config)
    scores = decode_scores(class_logits)

    # combined NMS does not say which anchor a box came from: NMS per class and per image on
    # the indices instead, keeping everything static-shaped for tf.function and SavedModel.
    def one_image(inputs):
        image_boxes, image_scores = inputs
        num_classes = tf.shape(image_scores)[1]

        def one_class(class_index):
            class_scores = image_scores[:, class_index]
            # V4: the greedy CPU kernel, padded to a fixed size (a TFLite builtin too)
            selected, valid = tf.raw_ops.NonMaxSuppressionV4(
                boxes=image_boxes,
                scores=class_scores,
                max_output_size=config.max_detections_per_class,
                iou_threshold=config.iou_threshold,
                score_threshold=config.score_threshold,
                pad_to_max_output_size=True,
            )
            keep = tf.range(config.max_detections_per_class) < valid
            picked = tf.gather(class_scores, selected)
            return (
                tf.where(keep, picked, -1.0),
                tf.where(keep, selected, -1),
                tf.fill([config.max_detections_per_class], class_index),
            )

        per_class_scores, per_class_anchor, per_class_label = tf.map_fn(
            one_class,
            tf.range(num_classes),
            fn_output_signature=(tf.float32, tf.int32, tf.int32),
        )
        flat_scores = tf.reshape(per_class_scores, [-1])
        k = tf.minimum(config.max_total_detections, tf.size(flat_scores))
        top_scores, order = tf.math.top_k(flat_scores, k=k, sorted=True)
        anchor_indices = tf.gather(tf.reshape(per_class_anchor, [-1]), order)
        labels = tf.gather(tf.reshape(per_class_label, [-1]), order)
        found = top_scores >= 0.0
        count = tf.reduce_sum(tf.cast(found, tf.int32))
        pad = config.max_total_detections - k
        safe_indices = tf.maximum(anchor_indices, 0)
        out_boxes = tf.where(found[:, None], tf.gather(image_boxes, safe_indices), 0.0)
        return (
            tf.pad(out_boxes, [[0, pad], [0, 0]]),
            tf.pad(tf.where(found, top_scores, 0.0), [[0, pad]]),
            tf.pad(tf.where(found, labels, 0), [[0, pad]]),
            count,
            tf.pad(tf.where(found, anchor_indices, 0), [[0, pad]]),
        )

    out = tf.map_fn(
        one_image,
        (boxes, scores),
        fn_output_signature=(tf.float32, tf.float32, tf.int32, tf.int32, tf.int32),
    )
    k = config.max_total_detections
    return {
        "boxes": tf.ensure_shape(out[0], [None, k, 4]),
        "scores": tf.ensure_shape(out[1], [None, k]),
        "classes": tf.ensure_shape(out[2], [None, k]),
        "num_detections": out[3],
        "anchor_indices": tf.ensure_shape(out[4], [None, k]),
    }

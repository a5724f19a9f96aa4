"""SSD post-processing as the TF Object Detection API configures it: decode the box codes
against the anchors, sigmoid scores without the background column, per-class non-maximum
suppression (IoU 0.6, at most 100 boxes per class and 100 in all), then clip to the image."""

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


def decode_boxes(
    box_codes: tf.Tensor, anchors: tf.Tensor, config: PostprocessConfig, *, clip: bool = True
):
    """Normalised ``[ymin, xmin, ymax, xmax]`` boxes ``[B, A, 4]``, clipped to the image."""
    boxes = box_coder.decode(box_codes, anchors[None], config.box_coder_scales)
    return tf.clip_by_value(boxes, 0.0, 1.0) if clip else boxes


def _detect_one(boxes: tf.Tensor, scores: tf.Tensor, config: PostprocessConfig):
    """One image: ``boxes`` [A, 4], ``scores`` [A, C] -> padded (boxes, scores, classes,
    count, anchor indices). The class loop is unrolled (C is static): no while loop, so the
    graph also runs in TFLite."""
    per_class = config.max_detections_per_class
    all_scores, all_anchors, all_labels = [], [], []
    for class_index in range(scores.shape[-1]):
        class_scores = scores[:, class_index]
        # V4: the greedy CPU kernel, padded to a fixed size (a TFLite builtin too)
        selected, valid = tf.raw_ops.NonMaxSuppressionV4(
            boxes=boxes,
            scores=class_scores,
            max_output_size=per_class,
            iou_threshold=config.iou_threshold,
            score_threshold=config.score_threshold,
            pad_to_max_output_size=True,
        )
        keep = tf.range(per_class) < valid
        all_scores.append(tf.where(keep, tf.gather(class_scores, selected), -1.0))
        all_anchors.append(selected)
        all_labels.append(tf.fill([per_class], class_index))
    flat_scores = tf.concat(all_scores, axis=0)
    k = min(config.max_total_detections, per_class * scores.shape[-1])
    top_scores, order = tf.math.top_k(flat_scores, k=k, sorted=True)
    found = top_scores >= 0.0
    anchor_indices = tf.where(found, tf.gather(tf.concat(all_anchors, axis=0), order), 0)
    labels = tf.where(found, tf.gather(tf.concat(all_labels, axis=0), order), 0)
    pad = config.max_total_detections - k
    return (
        tf.pad(tf.where(found[:, None], tf.gather(boxes, anchor_indices), 0.0), [[0, pad], [0, 0]]),
        tf.pad(tf.where(found, top_scores, 0.0), [[0, pad]]),
        tf.pad(labels, [[0, pad]]),
        tf.reduce_sum(tf.cast(found, tf.int32)),
        tf.pad(anchor_indices, [[0, pad]]),
    )


def detect(box_codes, class_logits, anchors, config: PostprocessConfig) -> dict[str, tf.Tensor]:
    """The final detections: ``boxes`` [B, K, 4] normalised yxyx, ``scores`` [B, K],
    ``classes`` [B, K] (0-based int32), ``num_detections`` [B] int32, K = max_total_detections
    (rows past num_detections are padding), and ``anchor_indices`` [B, K] of each box."""
    # As the API: NMS compares the unclipped boxes, the kept ones are clipped afterwards
    boxes = decode_boxes(box_codes, anchors, config, clip=False)
    scores = decode_scores(class_logits)
    batch = boxes.shape[0]
    if batch is not None:  # a static batch (the TFLite export): unrolled as well
        images = [_detect_one(boxes[i], scores[i], config) for i in range(batch)]
        out = [tf.stack(parts) for parts in zip(*images, strict=True)]
    else:
        out = tf.map_fn(
            lambda inputs: _detect_one(inputs[0], inputs[1], config),
            (boxes, scores),
            fn_output_signature=(tf.float32, tf.float32, tf.int32, tf.int32, tf.int32),
        )
    k = config.max_total_detections
    return {
        "boxes": tf.ensure_shape(tf.clip_by_value(out[0], 0.0, 1.0), [batch, k, 4]),
        "scores": tf.ensure_shape(out[1], [batch, k]),
        "classes": tf.ensure_shape(out[2], [batch, k]),
        "num_detections": out[3],
        "anchor_indices": tf.ensure_shape(out[4], [batch, k]),
    }

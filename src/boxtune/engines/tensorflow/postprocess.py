"""SSD post-processing as the TF Object Detection API configures it: decode the box codes
against the anchors, sigmoid scores without the background column, per-class non-maximum
suppression (IoU 0.6, at most 100 boxes per class and 100 in all), then clip to the image.

The TF2 zoo models need the API's whole ``SSDMetaArch.postprocess`` (typed options, all off by
default, which is the SSDLite engine's behaviour):

- ``background_column=False``: the logits have no background column (EfficientDet's
  ``add_background_class: false``), every column is a class;
- ``clip_window`` (an argument of :func:`detect`): per image the part of the network input
  that holds the image, ``[ymin, xmin, ymax, xmax]`` normalised (``_compute_clip_window``:
  ``[0, 0, true_height / input_height, true_width / input_width]``; :func:`clip_window`);
- ``prune_outside_window=True``: as the API's ``multiclass_non_max_suppression`` with a clip
  window, every box NMS kept (up to ``max_detections_per_class`` per class) is clipped to the
  window and dropped if nothing of it is left (zero area) *before* the best
  ``max_total_detections`` are taken (without it, the best are taken, then clipped);
- ``change_coordinate_frame=True``: the boxes are then expressed relative to the window (the
  API's ``change_coordinate_frame`` default), i.e. normalised to the true image.
"""

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
    background_column: bool = True
    prune_outside_window: bool = False
    change_coordinate_frame: bool = False


# The OD API's SSD post-processing of a TF2 zoo model (clip window given to detect())
ZOO_POSTPROCESS = PostprocessConfig(prune_outside_window=True, change_coordinate_frame=True)


def clip_window(true_image_shapes, input_shape: tuple[int, int]) -> tf.Tensor:
    """The API's ``SSDMetaArch._compute_clip_window``: float32 ``[B, 4]`` windows
    ``[0, 0, true_height / input_height, true_width / input_width]`` from ``true_image_shapes``
    ``[B, 3]`` (the second output of preprocessing) and the network input's (height, width)."""
    shapes = tf.cast(tf.convert_to_tensor(true_image_shapes), tf.float32)
    heights, widths = shapes[:, 0], shapes[:, 1]
    zeros = tf.zeros_like(heights)
    input_height, input_width = (float(n) for n in input_shape)
    return tf.stack([zeros, zeros, heights / input_height, widths / input_width], axis=1)


def decode_scores(class_logits: tf.Tensor, config: PostprocessConfig | None = None) -> tf.Tensor:
    """Per-class sigmoid scores ``[B, A, C]`` (the background column, if any, dropped)."""
    if config is not None and not config.background_column:
        return tf.sigmoid(class_logits)
    return tf.sigmoid(class_logits[:, :, 1:])


def decode_boxes(
    box_codes: tf.Tensor, anchors: tf.Tensor, config: PostprocessConfig, *, clip: bool = True
):
    """Normalised ``[ymin, xmin, ymax, xmax]`` boxes ``[B, A, 4]``, clipped to the image."""
    boxes = box_coder.decode(box_codes, anchors[None], config.box_coder_scales)
    return tf.clip_by_value(boxes, 0.0, 1.0) if clip else boxes


def _clip_to_window(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """``boxes`` [N, 4] clipped to ``window`` [4] (``box_list_ops.clip_to_window``)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    win_ymin, win_xmin, win_ymax, win_xmax = tf.unstack(window)
    return tf.stack(
        [
            tf.maximum(tf.minimum(ymin, win_ymax), win_ymin),
            tf.maximum(tf.minimum(xmin, win_xmax), win_xmin),
            tf.maximum(tf.minimum(ymax, win_ymax), win_ymin),
            tf.maximum(tf.minimum(xmax, win_xmax), win_xmin),
        ],
        axis=-1,
    )


def _to_window_frame(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """``box_list_ops.change_coordinate_frame``: ``boxes`` relative to ``window``."""
    height, width = window[2] - window[0], window[3] - window[1]
    origin = tf.stack([window[0], window[1], window[0], window[1]])
    scale = tf.stack([1.0 / height, 1.0 / width, 1.0 / height, 1.0 / width])
    return (boxes - origin) * scale


def _detect_one(boxes: tf.Tensor, scores: tf.Tensor, window, config: PostprocessConfig):
    """One image: ``boxes`` [A, 4], ``scores`` [A, C], ``window`` [4] or None -> padded
    (boxes, scores, classes, count, anchor indices). The class loop is unrolled (C is static):
    no while loop, so the graph also runs in TFLite."""
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
    flat_anchors = tf.concat(all_anchors, axis=0)
    candidates = None
    if config.prune_outside_window:
        # Every kept box clipped; one with nothing left in the window drops out before top-k
        candidates = _clip_to_window(tf.gather(boxes, flat_anchors), window)
        ymin, xmin, ymax, xmax = tf.unstack(candidates, axis=-1)
        flat_scores = tf.where((ymax - ymin) * (xmax - xmin) > 0.0, flat_scores, -1.0)
    k = min(config.max_total_detections, per_class * scores.shape[-1])
    top_scores, order = tf.math.top_k(flat_scores, k=k, sorted=True)
    found = top_scores >= 0.0
    anchor_indices = tf.where(found, tf.gather(flat_anchors, order), 0)
    labels = tf.where(found, tf.gather(tf.concat(all_labels, axis=0), order), 0)
    if candidates is None:
        kept = tf.gather(boxes, anchor_indices)
        if window is not None:
            kept = _clip_to_window(kept, window)
    else:
        kept = tf.gather(candidates, order)
    if config.change_coordinate_frame:
        kept = _to_window_frame(kept, window)
    pad = config.max_total_detections - k
    return (
        tf.pad(tf.where(found[:, None], kept, 0.0), [[0, pad], [0, 0]]),
        tf.pad(tf.where(found, top_scores, 0.0), [[0, pad]]),
        tf.pad(labels, [[0, pad]]),
        tf.reduce_sum(tf.cast(found, tf.int32)),
        tf.pad(anchor_indices, [[0, pad]]),
    )


def detect(
    box_codes,
    class_logits,
    anchors,
    config: PostprocessConfig,
    *,
    clip_window: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """The final detections: ``boxes`` [B, K, 4] normalised yxyx, ``scores`` [B, K],
    ``classes`` [B, K] (0-based int32), ``num_detections`` [B] int32, K = max_total_detections
    (rows past num_detections are padding), and ``anchor_indices`` [B, K] of each box.

    ``clip_window``: float32 ``[B, 4]`` (see :func:`clip_window`); without it the boxes are
    clipped to the whole input ``[0, 0, 1, 1]``."""
    # As the API: NMS compares the unclipped boxes, the kept ones are clipped afterwards
    boxes = decode_boxes(box_codes, anchors, config, clip=False)
    scores = decode_scores(class_logits, config)
    batch = boxes.shape[0]
    k = config.max_total_detections
    if clip_window is None and not (config.prune_outside_window or config.change_coordinate_frame):
        # The SSDLite engine's graph: clipped to [0, 1] after the top-k
        out = _detect_all(boxes, scores, None, config)
        return _outputs(tf.clip_by_value(out[0], 0.0, 1.0), out, batch, k)
    if clip_window is None:
        clip_window = tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [tf.shape(boxes)[0], 1])
    clip_window = tf.cast(tf.convert_to_tensor(clip_window), tf.float32)
    out = _detect_all(boxes, scores, clip_window, config)
    return _outputs(out[0], out, batch, k)


def _detect_all(boxes, scores, windows, config: PostprocessConfig):
    batch = boxes.shape[0]
    if batch is not None:  # a static batch (the TFLite export): unrolled as well
        images = [
            _detect_one(boxes[i], scores[i], None if windows is None else windows[i], config)
            for i in range(batch)
        ]
        return [tf.stack(parts) for parts in zip(*images, strict=True)]
    signature = (tf.float32, tf.float32, tf.int32, tf.int32, tf.int32)
    if windows is None:
        return tf.map_fn(
            lambda inputs: _detect_one(inputs[0], inputs[1], None, config),
            (boxes, scores),
            fn_output_signature=signature,
        )
    return tf.map_fn(
        lambda inputs: _detect_one(inputs[0], inputs[1], inputs[2], config),
        (boxes, scores, windows),
        fn_output_signature=signature,
    )


def _outputs(detected_boxes, out, batch, k) -> dict[str, tf.Tensor]:
    return {
        "boxes": tf.ensure_shape(detected_boxes, [batch, k, 4]),
        "scores": tf.ensure_shape(out[1], [batch, k]),
        "classes": tf.ensure_shape(out[2], [batch, k]),
        "num_detections": out[3],
        "anchor_indices": tf.ensure_shape(out[4], [batch, k]),
    }

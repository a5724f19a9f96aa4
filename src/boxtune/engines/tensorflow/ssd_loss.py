"""The TF Object Detection API's SSD loss, as ``ssdlite_mobilenet_v2_coco`` configures it.

Pure TensorFlow on static shapes (batch ``B``, anchors ``A``, ``C`` foreground classes plus a
background column, ``M`` padded ground-truth boxes per image), so it runs inside a
``tf.function`` with a fixed input signature without retracing. Boxes and anchors are
normalised ``[ymin, xmin, ymax, xmax]``.

What it re-creates (``ssd_meta_arch.SSDMetaArch.loss`` with that config):

- similarity: IoU between every gt box and every anchor;
- ``ArgMaxMatcher(matched_threshold=0.5, unmatched_threshold=0.5,
  force_match_for_each_row=True)``: an anchor matches its best gt box when that IoU is at least
  0.5; then every valid gt box claims its own best anchor whatever the IoU, overriding (two gt
  boxes with the same best anchor: the lower gt index wins, as in the API); padded rows never
  match;
- targets: ``faster_rcnn_box_coder`` codes (scales 10, 10, 5, 5) of the matched gt box, and a
  one-hot class target over ``C + 1`` columns (column 0 background); unmatched anchors get the
  background one-hot and no localization loss;
- ``WeightedSmoothL1LocalizationLoss`` (Huber, delta 1) summed over the code, positives only;
  ``WeightedSigmoidClassificationLoss`` summed over all ``C + 1`` columns;
- ``HardExampleMiner(num_hard_examples=3000, loss_type=CLASSIFICATION,
  max_negatives_per_positive=3, min_negatives_per_image=3)``: per image, the 3000 anchors with
  the highest classification loss are selected; of those, every positive is kept and the first
  ``max(3, floor(3 * positives kept))`` negatives in loss order;
- ``normalize_loss_by_num_matches``: both sums over the batch divided by
  ``max(matched anchors in the batch, 1)`` (counted before mining), weights 1 and 1.

Deviation: the miner's NMS among the selected anchors (``iou_threshold: 0.99`` on the decoded
predicted boxes) is skipped. At 0.99 it drops almost nothing, and it is the one step that needs
data-dependent shapes. With ``A <= num_hard_examples`` (1917 anchors at 300 x 300) every anchor
is selected, so the miner keeps all positives and ``min(max(3, 3 * positives), negatives)`` of
the hardest negatives.

The TF2 zoo configs (RetinaNet, SSD-FPN, EfficientDet) replace the miner with
``weighted_sigmoid_focal`` (``focal_gamma`` set: every anchor counts, each element weighted by
``alpha_t * (1 - p_t) ** gamma``), set ``normalize_loc_loss_by_codesize`` (the localization
sum divided by 4) and ``encode_background_as_zeros`` (an unmatched anchor's class target is all
zeros, not the background one-hot).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from boxtune.engines.tensorflow import box_coder


@dataclass(frozen=True)
class SSDLossConfig:
    """The loss numbers; the defaults are ``ssdlite_mobilenet_v2_coco.config``'s. A
    ``focal_gamma`` selects the focal loss without mining (the TF2 zoo configs)."""

    matched_threshold: float = 0.5  # = unmatched_threshold: no ignored band
    max_negatives_per_positive: float = 3.0
    min_negatives_per_image: int = 3
    num_hard_examples: int = 3000
    scales: tuple[float, float, float, float] = box_coder.DEFAULT_SCALES
    smooth_l1_delta: float = 1.0
    localization_weight: float = 1.0
    classification_weight: float = 1.0
    focal_gamma: float | None = None
    focal_alpha: float = 0.25
    normalize_loc_loss_by_codesize: bool = False
    # False: the logits have one column per class and no background column (EfficientDet's
    # add_background_class: false); an unmatched anchor's target is all zeros.
    background_column: bool = True
    # The zoo configs' encode_background_as_zeros: an unmatched anchor's target is all zeros,
    # the background column's too (which thus always learns 0), instead of its one-hot.
    encode_background_as_zeros: bool = False


def pairwise_iou(gt_boxes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
    """IoU ``[B, M, A]`` between gt boxes ``[B, M, 4]`` and anchors ``[A, 4]``."""
    g_ymin, g_xmin, g_ymax, g_xmax = tf.unstack(gt_boxes[:, :, None, :], axis=-1)
    a_ymin, a_xmin, a_ymax, a_xmax = tf.unstack(anchors[None, None, :, :], axis=-1)
    inter_h = tf.maximum(tf.minimum(g_ymax, a_ymax) - tf.maximum(g_ymin, a_ymin), 0.0)
    inter_w = tf.maximum(tf.minimum(g_xmax, a_xmax) - tf.maximum(g_xmin, a_xmin), 0.0)
    intersection = inter_h * inter_w
    union = (g_ymax - g_ymin) * (g_xmax - g_xmin) + (a_ymax - a_ymin) * (a_xmax - a_xmin)
    union -= intersection
    # The API's guard: no overlap is IoU 0 even for degenerate (padded, all-zero) boxes.
    return tf.where(intersection > 0.0, intersection / tf.maximum(union, 1e-12), 0.0)


def match_anchors(
    anchors: tf.Tensor, gt_boxes: tf.Tensor, gt_valid: tf.Tensor, matched_threshold: float = 0.5
) -> tf.Tensor:
    """Matched gt index per anchor, ``[B, A]`` int32, -1 for background.

    The API's ``ArgMaxMatcher`` with ``unmatched_threshold == matched_threshold`` and
    ``force_match_for_each_row=True``; rows where ``gt_valid`` is False never match.
    """
    iou = pairwise_iou(gt_boxes, anchors)  # [B, M, A]
    valid = tf.cast(gt_valid, tf.bool)[:, :, None]
    num_gt = tf.shape(iou)[1]
    # Per anchor, its best valid gt box; padded rows sit at -1, below any real IoU and threshold.
    masked = tf.where(valid, iou, -1.0)
    best_gt = tf.argmax(masked, axis=1, output_type=tf.int32)
    matches = tf.where(tf.reduce_max(masked, axis=1) >= matched_threshold, best_gt, -1)
    # Per valid gt box, its best anchor; an anchor claimed by several takes the lowest gt index
    # (what the API's argmax over the one-hot column gives).
    best_anchor = tf.argmax(iou, axis=2, output_type=tf.int32)  # [B, M]
    claims = tf.logical_and(
        tf.one_hot(best_anchor, tf.shape(iou)[2], on_value=True, off_value=False), valid
    )
    gt_index = tf.range(num_gt, dtype=tf.int32)[None, :, None]
    claimer = tf.reduce_min(tf.where(claims, gt_index, num_gt), axis=1)  # [B, A]
    return tf.where(claimer < num_gt, claimer, matches)


def assign_targets(
    anchors: tf.Tensor,
    gt_boxes: tf.Tensor,
    gt_classes: tf.Tensor,
    gt_valid: tf.Tensor,
    num_columns: int,
    *,
    config: SSDLossConfig = SSDLossConfig(),
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Matches, class targets ``[B, A, num_columns]`` and box-code targets ``[B, A, 4]``.

    ``num_columns`` is ``C + 1``: column 0 background, column ``k + 1`` foreground class ``k``
    (without ``config.background_column``: ``C``, column ``k`` class ``k``). Unmatched anchors
    get the background one-hot (all zeros without a background column or with
    ``encode_background_as_zeros``) and an all-zero code (never used: they carry no
    localization loss).
    """
    matches = match_anchors(anchors, gt_boxes, gt_valid, config.matched_threshold)
    positive = matches >= 0
    safe = tf.maximum(matches, 0)  # gather index for background rows; masked out below
    matched_boxes = tf.gather(gt_boxes, safe, batch_dims=1)  # [B, A, 4]
    matched_classes = tf.gather(tf.cast(gt_classes, tf.int32), safe, batch_dims=1)
    offset = 1 if config.background_column else 0
    background_one_hot = config.background_column and not config.encode_background_as_zeros
    # one_hot of -1 is all zeros
    column = tf.where(positive, matched_classes + offset, 0 if background_one_hot else -1)
    cls_targets = tf.one_hot(column, num_columns, dtype=tf.float32)
    codes = box_coder.encode(matched_boxes, anchors[None], config.scales)
    reg_targets = tf.where(positive[..., None], codes, 0.0)
    return matches, cls_targets, reg_targets


def smooth_l1(difference: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """Elementwise Huber loss, written as TF1's ``tf.losses.huber_loss`` does."""
    absolute = tf.abs(difference)
    quadratic = tf.minimum(absolute, delta)
    return 0.5 * tf.square(quadratic) + delta * (absolute - quadratic)


def hard_example_mask(
    cls_losses: tf.Tensor, positive: tf.Tensor, *, config: SSDLossConfig = SSDLossConfig()
) -> tf.Tensor:
    """Which anchors ``[B, A]`` the hard example miner keeps (bool).

    Per image: the ``num_hard_examples`` anchors with the highest ``cls_losses`` are selected;
    of them every positive and the first ``max(min_negatives_per_image,
    floor(max_negatives_per_positive * selected positives))`` negatives in loss order are kept.
    """
    losses = tf.stop_gradient(cls_losses)
    # Descending and stable: equal losses keep anchor order (the API's top-k order).
    order = tf.argsort(losses, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)  # the inverse permutation
    selected = rank < config.num_hard_examples
    num_positives = tf.reduce_sum(tf.cast(positive & selected, tf.int32), axis=1)
    max_negatives = tf.maximum(
        config.min_negatives_per_image,
        tf.cast(config.max_negatives_per_positive * tf.cast(num_positives, tf.float32), tf.int32),
    )
    # The API's cumsum rule, in loss order: a negative is kept while at most max_negatives
    # negatives (itself included) come before it.
    negative_sorted = tf.gather(tf.logical_not(positive), order, batch_dims=1)
    negatives_so_far = tf.cumsum(tf.cast(negative_sorted, tf.int32), axis=1)
    negative_kept = tf.gather(negatives_so_far <= max_negatives[:, None], rank, batch_dims=1)
    return selected & (positive | (tf.logical_not(positive) & negative_kept))


def focal_weights(targets: tf.Tensor, logits: tf.Tensor, config: SSDLossConfig) -> tf.Tensor:
    """``SigmoidFocalClassificationLoss``'s per-element weight ``alpha_t * (1 - p_t) ** gamma``."""
    probabilities = tf.sigmoid(logits)
    p_t = targets * probabilities + (1.0 - targets) * (1.0 - probabilities)
    alpha_t = targets * config.focal_alpha + (1.0 - targets) * (1.0 - config.focal_alpha)
    return alpha_t * tf.pow(1.0 - p_t, config.focal_gamma)


def ssd_losses(
    box_codes: tf.Tensor,
    class_logits: tf.Tensor,
    anchors: tf.Tensor,
    gt_boxes: tf.Tensor,
    gt_classes: tf.Tensor,
    gt_valid: tf.Tensor,
    *,
    config: SSDLossConfig = SSDLossConfig(),
) -> dict[str, tf.Tensor]:
    """The SSD training loss for one batch.

    Args:
        box_codes: float32 ``[B, A, 4]`` predicted box codes.
        class_logits: float32 ``[B, A, C + 1]`` logits, column 0 background (``[B, A, C]``
            without ``config.background_column``).
        anchors: float32 ``[A, 4]`` normalised yxyx.
        gt_boxes: float32 ``[B, M, 4]`` normalised yxyx (see ``targets.pad_targets``).
        gt_classes: int32 ``[B, M]`` 0-based foreground classes.
        gt_valid: bool ``[B, M]``, False on padded rows.
        config: the loss numbers.

    Returns:
        float32 scalars: ``loss`` (= ``localization + classification``), ``localization`` and
        ``classification`` (each already weighted and normalised), and ``num_positives`` (matched
        anchors in the batch, before mining and before the max with 1).
    """
    matches, cls_targets, reg_targets = assign_targets(
        anchors, gt_boxes, gt_classes, gt_valid, class_logits.shape[-1], config=config
    )
    positive = matches >= 0
    positive_weight = tf.cast(positive, tf.float32)
    location_losses = positive_weight * tf.reduce_sum(
        smooth_l1(box_codes - reg_targets, config.smooth_l1_delta), axis=-1
    )
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=cls_targets, logits=class_logits)
    if config.focal_gamma is None:
        cls_losses = tf.reduce_sum(cross_entropy, axis=-1)
        mined = tf.cast(hard_example_mask(cls_losses, positive, config=config), tf.float32)
    else:
        cls_losses = tf.reduce_sum(
            focal_weights(cls_targets, class_logits, config) * cross_entropy, axis=-1
        )
        mined = tf.ones_like(cls_losses)
    if config.normalize_loc_loss_by_codesize:
        location_losses /= float(box_codes.shape[-1])
    num_positives = tf.reduce_sum(positive_weight)
    normalizer = tf.maximum(num_positives, 1.0)
    localization = config.localization_weight * tf.reduce_sum(location_losses * mined) / normalizer
    classification = config.classification_weight * tf.reduce_sum(cls_losses * mined) / normalizer
    return {
        "loss": localization + classification,
        "localization": localization,
        "classification": classification,
        "num_positives": num_positives,
    }

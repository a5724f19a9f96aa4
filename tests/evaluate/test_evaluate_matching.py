"""Greedy matching and the confusion matrix, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from boxtune.evaluate.matching import box_iou, match_image


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [3, 3, 3, 8]])
    # overlap 5x10 = 50, union 150 -> 1/3; disjoint; identical; zero-area box.
    assert box_iou(a, b)[0].tolist() == pytest.approx([1 / 3, 0.0, 1.0, 0.0])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_confusion_matrix_counts_by_hand():
    # Truth: cat(0) at g0, dog(1) at g1, bird(2) at g2 (never found).
    gt_boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)
    gt_classes = np.array([0, 1, 2])
    # Detections: cat on the cat (TP), cat on the dog (confusion dog->cat), dog on empty
    # ground (false detection), a second cat on the cat (duplicate -> false detection).
    det_boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [60, 0, 70, 10], [1, 0, 10, 10]], float)
    det_classes = np.array([0, 0, 1, 0])
    det_scores = np.array([0.9, 0.8, 0.7, 0.6])
    match = match_image(gt_boxes, gt_classes, det_boxes, det_classes, det_scores)
    assert match.true_positives == [(0, 0)]
    assert match.confusions == [(1, 1)]
    assert sorted(match.false_positives) == [2, 3]
    assert match.misses == [2]
    matrix = np.zeros((4, 4), np.int64)
    match.add_to_confusion(matrix, gt_classes, det_classes)
    # rows: truth cat, dog, bird, background; columns: predicted cat, dog, bird, background
    assert matrix.tolist() == [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 1],
        [1, 1, 0, 0],
    ]


def test_same_class_wins_over_higher_iou_of_another_class():
    gt_boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], float)
    gt_classes = np.array([1, 0])  # dog exactly under the detection, cat shifted by 2 px
    match = match_image(
        gt_boxes, gt_classes, np.array([[0, 0, 10, 10]], float), np.array([0]), np.array([0.9])
    )
    assert match.true_positives == [(0, 1)]  # IoU 8/12 with the cat is enough
    assert match.misses == [0]


def test_higher_score_matches_first_and_indices_refer_to_input_order():
    gt_boxes = np.array([[0, 0, 10, 10]], float)
    det_boxes = np.array([[0, 0, 10, 9], [0, 0, 10, 10]], float)
    # The second detection (score 0.9) is better-scored and takes the box.
    match = match_image(gt_boxes, np.array([0]), det_boxes, np.array([0, 0]), np.array([0.5, 0.9]))
    assert match.true_positives == [(1, 0)] and match.false_positives == [0]


def test_below_iou_threshold_is_not_a_match_and_empty_inputs_work():
    gt_boxes = np.array([[0, 0, 10, 10]], float)
    far = np.array([[6, 0, 16, 10]], float)  # IoU 4/16 = 0.25
    match = match_image(gt_boxes, np.array([0]), far, np.array([0]), np.array([0.9]))
    assert match.false_positives == [0] and match.misses == [0]
    empty = match_image(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert (empty.true_positives, empty.false_positives, empty.misses) == ([], [], [])
    only_truth = match_image(gt_boxes, np.array([0]), np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert only_truth.misses == [0]

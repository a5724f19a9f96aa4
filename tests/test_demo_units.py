"""The demo's choice of boxes to show, without running the demo (tests/sdk/test_demo.py does)."""

from __future__ import annotations

import numpy as np

from boxtune.demo import DRAW_MIN_SCORE, _best_per_object


def _reference(answer: dict, iou: float = 0.6) -> list[int]:
    """The demo's former pure-Python IoU loop, to check the shared box_iou gives the same."""

    def box_iou(a, b) -> float:
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        overlap = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
        return overlap / union if union > 0 else 0.0

    kept: list[int] = []
    boxes, scores = answer["normalized_boxes"], answer["scores"]
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if scores[i] < DRAW_MIN_SCORE:
            break
        if all(box_iou(boxes[i], boxes[k]) < iou for k in kept):
            kept.append(i)
    return kept


def test_one_box_per_object_best_score_first() -> None:
    answer = {
        "normalized_boxes": [
            [0.10, 0.10, 0.40, 0.40],  # object A, second class
            [0.11, 0.10, 0.40, 0.41],  # object A, best class
            [0.60, 0.60, 0.90, 0.90],  # object B
            [0.55, 0.55, 0.95, 0.95],  # object B again, IoU 0.56 < 0.6: kept
            [0.00, 0.00, 1.00, 1.00],  # below the score
            [0.20, 0.20, 0.30, 0.30],  # inside A but small: IoU 0.12, kept
        ],
        "classes": [1, 0, 2, 3, 0, 1],
        "scores": [0.7, 0.9, 0.8, 0.5, 0.2, 0.4],
    }
    assert _best_per_object(answer) == [1, 2, 3, 5] == _reference(answer)
    assert _best_per_object(answer, iou=0.5) == [1, 2, 5] == _reference(answer, iou=0.5)


def test_no_boxes_and_nothing_confident() -> None:
    empty = {"normalized_boxes": [], "classes": [], "scores": []}
    assert _best_per_object(empty) == [] == _reference(empty)
    faint = {"normalized_boxes": [[0, 0, 0.5, 0.5]], "classes": [0], "scores": [0.1]}
    assert _best_per_object(faint) == [] == _reference(faint)


def test_same_choice_as_before_on_random_answers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        corners = np.sort(rng.random((n, 2, 2)), axis=1)  # x1 <= x2, y1 <= y2
        boxes = corners.transpose(0, 2, 1).reshape(n, 4)[:, [0, 2, 1, 3]]
        answer = {
            "normalized_boxes": boxes.round(3).tolist(),
            "classes": rng.integers(0, 4, n).tolist(),
            "scores": rng.random(n).round(3).tolist(),
        }
        assert _best_per_object(answer) == _reference(answer)

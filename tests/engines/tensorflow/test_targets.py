"""pad_targets: loader targets -> padded, normalised yxyx arrays."""

from __future__ import annotations

import numpy as np
import pytest

from boxtune.engines.tensorflow.targets import pad_targets  # numpy only: no TensorFlow needed


def _target(boxes, labels):
    return {
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, np.int64),
    }


def test_normalises_reorders_and_pads():
    boxes, classes, valid = pad_targets(
        [_target([[10, 20, 30, 60]], [2]), _target([], [])], image_size=100, max_boxes=3
    )
    assert boxes.shape == (2, 3, 4) and boxes.dtype == np.float32
    assert classes.shape == (2, 3) and classes.dtype == np.int32
    assert valid.shape == (2, 3) and valid.dtype == bool
    np.testing.assert_allclose(boxes[0, 0], [0.2, 0.1, 0.6, 0.3])  # ymin, xmin, ymax, xmax
    assert classes[0, 0] == 2
    np.testing.assert_array_equal(valid, [[True, False, False], [False, False, False]])
    assert not boxes[0, 1:].any() and not boxes[1].any() and not classes[1].any()


def test_clips_and_drops_degenerate_boxes():
    targets = [
        _target(
            [
                [-10, 50, 40, 120],  # clipped to the image
                [120, 10, 150, 40],  # right of the image: zero width after clipping
                [30, 30, 30, 50],  # zero width
                [5, 5, 15, 5],  # zero height
                [0, 0, 100, 100],  # the whole image
            ],
            [0, 1, 2, 0, 1],
        )
    ]
    boxes, classes, valid = pad_targets(targets, image_size=100, max_boxes=4)
    np.testing.assert_array_equal(valid[0], [True, True, False, False])
    np.testing.assert_allclose(boxes[0, 0], [0.5, 0.0, 1.0, 0.4])
    np.testing.assert_allclose(boxes[0, 1], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(classes[0], [0, 1, 0, 0])
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0


def test_overflow_keeps_the_largest_in_input_order():
    areas = [[0, 0, 10, 10], [0, 0, 40, 40], [0, 0, 20, 20], [0, 0, 30, 30], [50, 50, 80, 80]]
    boxes, classes, valid = pad_targets(
        [_target(areas, [0, 1, 2, 0, 1])], image_size=100, max_boxes=3
    )
    assert valid[0].all()
    # Areas 100, 1600, 400, 900, 900: the 1600 and both 900s (ties: the earlier first) survive.
    np.testing.assert_array_equal(classes[0], [1, 0, 1])
    np.testing.assert_allclose(boxes[0, :, 2], [0.4, 0.3, 0.8])


def test_overflow_tie_keeps_the_earlier_box():
    same = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    _, classes, _ = pad_targets([_target(same, [0, 1, 2])], image_size=100, max_boxes=2)
    np.testing.assert_array_equal(classes[0], [0, 1])


def test_refuses_mismatched_labels_and_zero_max_boxes():
    with pytest.raises(ValueError, match="labels"):
        pad_targets([_target([[0, 0, 1, 1]], [0, 1])], image_size=10, max_boxes=2)
    with pytest.raises(ValueError, match="max_boxes"):
        pad_targets([_target([], [])], image_size=10, max_boxes=0)

"""Property tests: after every transform boxes stay valid and still frame the drawn pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boxtune.data.augment import (
    AugmentConfig,
    augment_sample,
    colour_transform,
    crop_window,
    flip_horizontal,
    random_crop_window,
    zoom_out,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_with_box(draw):
    """A black image with one white rectangle and its exact box."""
    width = draw(st.integers(24, 96))
    height = draw(st.integers(24, 96))
    x1 = draw(st.integers(0, width - 6))
    y1 = draw(st.integers(0, height - 6))
    x2 = draw(st.integers(x1 + 5, width))
    y2 = draw(st.integers(y1 + 5, height))
    image = np.zeros((height, width, 3), np.uint8)
    image[y1:y2, x1:x2] = 255
    return image, np.array([[x1, y1, x2, y2]], np.float32)


def assert_valid(boxes: np.ndarray, width: int, height: int) -> None:
    assert boxes.dtype == np.float32 and boxes.shape[1:] == (4,)
    assert np.all(np.isfinite(boxes))
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
    assert np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def white_extent(image: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(image.mean(axis=2) > 127)
    if not len(xs):
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def assert_aligned(image: np.ndarray, box: np.ndarray, tolerance: float) -> None:
    extent = white_extent(image)
    assert extent is not None, "the box survived but its pixels did not"
    assert np.allclose(extent, box, atol=tolerance), (extent, box.tolist(), tolerance)


@SETTINGS
@given(image_with_box())
def test_flip_moves_box_with_pixels_exactly(sample) -> None:
    image, boxes = sample
    flipped, moved = flip_horizontal(image, boxes)
    assert_valid(moved, image.shape[1], image.shape[0])
    assert white_extent(flipped) == tuple(int(v) for v in moved[0])
    again, back = flip_horizontal(flipped, moved)
    assert np.array_equal(again, image) and np.array_equal(back, boxes)


@SETTINGS
@given(image_with_box(), st.data())
def test_crop_keeps_valid_aligned_boxes_or_drops_mostly_cut_ones(sample, data) -> None:
    image, boxes = sample
    height, width = image.shape[:2]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    window = random_crop_window(rng, width, height, AugmentConfig(crop_min_scale=0.1))
    out, kept, labels = crop_window(image, boxes, np.array([3]), window, min_visibility=0.4)
    assert out.shape == image.shape
    assert_valid(kept, width, height)
    scale = max(width / (window[2] - window[0]), height / (window[3] - window[1]))
    if len(kept):
        assert labels.tolist() == [3]
        assert_aligned(out, kept[0], tolerance=1.0 + scale / 2)
    else:
        # Dropped only when little of it is left in the crop.
        x0, y0, x1, y1 = window
        bx0, by0, bx1, by1 = boxes[0]
        iw = max(0.0, min(x1, bx1) - max(x0, bx0))
        ih = max(0.0, min(y1, by1) - max(y0, by0))
        share = iw * ih / ((bx1 - bx0) * (by1 - by0))
        assert share < 0.4 + 1e-4 or min(iw, ih) * scale < 2.0 + 1e-3


@SETTINGS
@given(image_with_box(), st.floats(1.0, 2.0), st.floats(0, 1), st.floats(0, 1))
def test_zoom_out_keeps_box_on_its_pixels(sample, factor, ox, oy) -> None:
    image, boxes = sample
    height, width = image.shape[:2]
    out, moved = zoom_out(image, boxes, factor, (ox, oy), (0, 0, 0))
    assert out.shape == image.shape
    assert_valid(moved, width, height)
    if min(moved[0, 2] - moved[0, 0], moved[0, 3] - moved[0, 1]) >= 3:
        assert_aligned(out, moved[0], tolerance=1.5)


@SETTINGS
@given(image_with_box(), st.integers(0, 2**32 - 1))
def test_full_pipeline_keeps_boxes_valid_and_aligned(sample, seed) -> None:
    image, boxes = sample
    height, width = image.shape[:2]
    config = AugmentConfig(
        crop_probability=0.6,
        zoom_out_probability=0.3,
        photometric_probability=1.0,
        zoom_out_fill=(0, 0, 0),
    )
    out, kept, labels = augment_sample(
        image, boxes, np.array([0]), config, np.random.default_rng(seed)
    )
    assert out.shape == image.shape and out.dtype == np.uint8
    assert_valid(kept, width, height)
    assert len(kept) == len(labels) <= 1
    if len(kept) and min(kept[0, 2] - kept[0, 0], kept[0, 3] - kept[0, 1]) >= 3:
        scale = max(width, height) / min(boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1])
        assert_aligned(out, kept[0], tolerance=1.0 + min(scale, 1 / 0.3) / 2 + 0.5)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.floats(0, 60), st.floats(0, 60), st.floats(1, 40), st.floats(1, 40)),
        min_size=0,
        max_size=8,
    ),
    st.integers(0, 2**32 - 1),
)
def test_many_boxes_stay_valid(raw, seed) -> None:
    image = np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    boxes = np.array(
        [[x, y, min(80.0, x + w), min(64.0, y + h)] for x, y, w, h in raw], np.float32
    ).reshape(-1, 4)
    labels = np.arange(len(boxes))
    _out, kept, kept_labels = augment_sample(
        image, boxes, labels, AugmentConfig(), np.random.default_rng(seed)
    )
    assert_valid(kept, 80, 64)
    assert len(set(kept_labels.tolist())) == len(kept_labels)  # no box duplicated


def test_colour_transform_is_identity_at_neutral_settings() -> None:
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    same = colour_transform(image, 1.0, 1.0, 1.0, 0.0)
    assert np.abs(same.astype(int) - image.astype(int)).max() <= 1
    grey = colour_transform(image, 1.0, 1.0, 0.0, 0.0)
    assert np.abs(grey.astype(int) - grey.mean(axis=2, keepdims=True)).max() <= 1.5
    brighter = colour_transform(image, 1.2, 1.0, 1.0, 0.0)
    assert brighter.astype(int).sum() > image.astype(int).sum()


def test_off_config_changes_nothing() -> None:
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    boxes = np.array([[1, 2, 10, 12]], np.float32)
    out, kept, _ = augment_sample(
        image, boxes, np.array([0]), AugmentConfig.off(), np.random.default_rng(1)
    )
    assert np.array_equal(out, image) and np.array_equal(kept, boxes)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="horizontal_flip"):
        AugmentConfig(horizontal_flip=2.0)


def test_presets_are_valid_configs() -> None:
    from boxtune.data.augment import PRESETS

    assert {"flip", "light", "standard", "strong"} <= set(PRESETS)
    assert PRESETS["standard"] == AugmentConfig()
    assert PRESETS["flip"].crop_probability == 0.0 and PRESETS["flip"].horizontal_flip == 0.5

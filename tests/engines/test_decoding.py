"""The numpy post-processing (shared by the torch and ONNX Runtime runners) against torch and
torchvision doing the same steps: the answers a torch-free server gives are the torch path's."""

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as torchvision_batched_nms

from boxtune.engines.nms import batched_nms
from boxtune.engines.torch.anchors import decode, make_anchors
from boxtune.engines.torch.backbone import FEATURE_STRIDES
from boxtune.engines.torch.decoding import (
    PYRAMID_STRIDES,
    PostprocessConfig,
    anchor_grid,
    decode_boxes,
    postprocess,
)

SIZE = 128


def random_boxes(rng, count: int, *, empty_share: float = 0.0) -> np.ndarray:
    corners = rng.uniform(0, 320, (count, 2)).astype(np.float32)
    sizes = rng.uniform(0, 80, (count, 2)).astype(np.float32)
    sizes[rng.random(count) < empty_share] = 0
    return np.concatenate([corners, corners + sizes], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(40))
def test_nms_keeps_what_torchvision_keeps_in_the_same_order(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 1000))
    boxes = random_boxes(rng, count, empty_share=0.1 if seed % 3 == 0 else 0.0)
    scores = rng.random(count).astype(np.float32)
    if seed % 4 == 0:  # many exact ties
        scores = np.round(scores, 2).astype(np.float32)
    classes = rng.integers(0, 5, count)
    threshold = float(rng.choice([0.3, 0.5, 0.6, 0.9]))
    expected = torchvision_batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), threshold
    ).numpy()
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, threshold), expected)
    np.testing.assert_array_equal(
        batched_nms(boxes, scores, classes, threshold, max_kept=7), expected[:7]
    )


def test_nms_of_nothing():
    assert batched_nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0), 0.5).size == 0


def test_anchors_and_decoding_match_the_torch_training_code():
    assert PYRAMID_STRIDES[: len(FEATURE_STRIDES)] == FEATURE_STRIDES
    anchors = anchor_grid(320, PYRAMID_STRIDES)
    np.testing.assert_array_equal(anchors, make_anchors(320, PYRAMID_STRIDES).numpy())
    deltas = np.random.default_rng(0).normal(0, 1.5, anchors.shape).astype(np.float32)
    deltas[:10, 2:] = 50.0  # past the log-size clamp
    expected = decode(torch.from_numpy(anchors), torch.from_numpy(deltas)).numpy()
    np.testing.assert_allclose(decode_boxes(anchors, deltas), expected, rtol=0, atol=1e-3)


def torch_postprocess(logits, deltas, anchors, config):
    """The steps in torch + torchvision (what the torch runner did before they moved to
    numpy): the reference the numpy post-processing must reproduce."""
    scores = torch.from_numpy(logits).sigmoid().reshape(-1)
    keep = (scores > config.score_floor).nonzero().squeeze(1)
    scores = scores[keep]
    if scores.numel() > config.pre_nms_top_k:
        scores, order = scores.topk(config.pre_nms_top_k)
        keep = keep[order]
    num_classes = logits.shape[-1]
    anchor_index, classes = keep // num_classes, keep % num_classes
    anchors_t, deltas_t = torch.from_numpy(anchors), torch.from_numpy(deltas[0])
    boxes = decode(anchors_t[anchor_index], deltas_t[anchor_index]).clamp(0, SIZE)
    kept = torchvision_batched_nms(boxes, scores, classes, config.iou_threshold)
    kept = kept[: config.max_detections]
    return boxes[kept].numpy(), classes[kept].numpy(), scores[kept].numpy()


@pytest.mark.parametrize("seed", range(5))
def test_postprocess_gives_the_torch_answer(seed):
    anchors = anchor_grid(SIZE, PYRAMID_STRIDES)
    rng = np.random.default_rng(seed)
    logits = (rng.normal(-3, 3, (1, anchors.shape[0], 3))).astype(np.float32)
    deltas = rng.normal(0, 0.3, (1, anchors.shape[0], 4)).astype(np.float32)
    config = PostprocessConfig(pre_nms_top_k=300)
    (det,) = postprocess(logits, deltas, anchors, SIZE, config)
    boxes, classes, scores = torch_postprocess(logits, deltas, anchors, config)
    assert len(det) == len(boxes) == config.max_detections
    np.testing.assert_array_equal(det.classes, classes)
    np.testing.assert_allclose(det.scores, scores, rtol=0, atol=1e-6)
    assert np.abs(det.boxes - boxes).max() < 1e-3


def test_postprocess_limits_and_sorting():
    anchors = anchor_grid(SIZE, PYRAMID_STRIDES)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (1, anchors.shape[0], 3)).astype(np.float32)
    deltas = rng.normal(0, 0.1, (1, anchors.shape[0], 4)).astype(np.float32)
    config = PostprocessConfig(max_detections=7, pre_nms_top_k=50)
    (det,) = postprocess(logits, deltas, anchors, SIZE, config)
    assert len(det) == 7
    assert np.all(np.diff(det.scores) <= 0)
    assert det.boxes.min() >= 0 and det.boxes.max() <= SIZE
    # scores under the floor are dropped (no overflow warning for very negative logits)
    hopeless = np.full((1, anchors.shape[0], 3), -200.0, np.float32)
    with np.errstate(all="raise"):
        (none,) = postprocess(hopeless, deltas, anchors, SIZE)
    assert len(none) == 0

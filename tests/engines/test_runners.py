import copy

import numpy as np
import pytest
import torch
from _engine_helpers import SMALL, draw_scene

from boxtune.engines.onnx_session import ort_threads
from boxtune.engines.torch.runners import OnnxRunner, TorchRunner
from boxtune.errors import ModelError


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(42)
    images = [draw_scene(rng, SMALL)[0] for _ in range(3)]
    # real-looking sizes: non-square, larger and smaller than the input size
    images.append(np.array(draw_scene(rng, 300)[0][:180, :300]))
    images.append(np.array(draw_scene(rng, 90)[0][:90, :60]))
    return images


@pytest.fixture(scope="module")
def confident_detector(trained_small_detector):
    """The briefly trained detector with its class logits spread out, so that its scores cover
    (0, 1) like a converged model's (no near-ties whose order float noise could flip)."""
    detector = copy.deepcopy(trained_small_detector)
    with torch.no_grad():
        detector.net.head.class_tower.predict_pw.weight.mul_(40.0)
        detector.net.head.class_tower.predict_pw.bias.add_(4.0)
    return detector


def test_onnxruntime_and_torch_runners_agree(confident_detector, scenes):
    torch_runner = confident_detector.runner("torch")
    onnx_runner = confident_detector.runner("onnxruntime")
    assert isinstance(torch_runner, TorchRunner) and isinstance(onnx_runner, OnnxRunner)
    a = torch_runner.predict(scenes)
    b = onnx_runner.predict(scenes)
    for da, db in zip(a, b, strict=True):
        confident = da.above(0.05)
        assert len(confident) >= 5
        other = db.top(len(confident))
        np.testing.assert_array_equal(confident.classes, other.classes)
        assert np.abs(confident.boxes - other.boxes).max() < 1e-4
        assert np.abs(confident.scores - other.scores).max() < 1e-4
        assert abs(len(da) - len(db)) <= 2  # only ties at the 1e-4 score floor may differ


def test_runner_maps_boxes_back_to_original_pixels(trained_small_detector, scenes):
    runner = trained_small_detector.runner("torch")
    square = scenes[0]
    wide = np.ascontiguousarray(np.repeat(square, 3, axis=1))  # same scene stretched 3x wide
    (a,) = runner.predict([square])
    (b,) = runner.predict([wide])
    assert b.boxes[:, [0, 2]].max() > SMALL  # x reaches past the small image
    np.testing.assert_allclose(b.boxes[0], a.boxes[0] * [3, 1, 3, 1], atol=1.5)
    assert b.boxes[:, [1, 3]].max() <= square.shape[0] + 1e-3


def test_runner_accepts_gray_and_rgba_and_rejects_floats(trained_small_detector, scenes):
    runner = trained_small_detector.runner("torch")
    gray = scenes[0][:, :, 0]
    rgba = np.dstack([scenes[0], np.full(scenes[0].shape[:2], 255, np.uint8)])
    assert len(runner.predict([gray])) == 1
    (from_rgba,) = runner.predict([rgba])
    (from_rgb,) = runner.predict([scenes[0]])
    np.testing.assert_array_equal(from_rgba.boxes, from_rgb.boxes)
    with pytest.raises(ModelError, match="uint8"):
        runner.predict([scenes[0].astype(np.float32)])
    with pytest.raises(ModelError, match="HxWx3"):
        runner.predict([np.zeros((4, 4, 5), np.uint8)])
    assert runner.predict([]) == []


def test_ort_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    import os

    assert ort_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("BOXTUNE_ORT_THREADS", "1")
    assert ort_threads() == 1

"""A fake Runner whose boxes follow the image content, plus images with known objects.

The runner finds saturated red, green and blue regions (classes 0, 1, 2) and returns their
bounding boxes with fixed scores, plus three low-score boxes derived from a hash of the pixels,
so that every image gets a deterministic, content-dependent answer. Servers load it with
``--model py:serve_fakes:make_runner`` (tests/serve on PYTHONPATH).

Environment knobs for process tests: ``BOXTUNE_FAKE_DELAY_S`` (sleep per model call),
``BOXTUNE_FAKE_LOAD_S`` (sleep while loading), ``BOXTUNE_FAKE_SLOW_AFTER_FIRST`` (a marker path:
the first process to load creates it and loads at once, every later one sleeps
``BOXTUNE_FAKE_LOAD_S``), ``BOXTUNE_FAKE_SLOW_WIDTH`` (a model call holding an image this many
pixels wide sleeps ``BOXTUNE_FAKE_SLOW_S``: one slow request among normal ones).
"""

from __future__ import annotations

import io
import os
import time
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.labels import LabelMap

DEFAULT_MODEL_ID = "pytorch-od1-efficientdet-lite0-320"
# The fake runner as a model reference (the server imports serve_fakes from PYTHONPATH)
FAKE_MODEL = "py:serve_fakes:make_runner"
LABELS = LabelMap((1, 2, 3), ("red thing", "green thing", "blue thing"))
COLOR_SCORES = (0.95, 0.9, 0.85)


def color_masks(image: np.ndarray) -> list[np.ndarray]:
    rgb = image.astype(np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return [
        (r > 160) & (g < 90) & (b < 90),
        (g > 160) & (r < 90) & (b < 90),
        (b > 160) & (r < 90) & (g < 90),
    ]


def fake_detections(image: np.ndarray) -> Detections:
    height, width = image.shape[:2]
    boxes, classes, scores = [], [], []
    for class_index, mask in enumerate(color_masks(image)):
        if mask.sum() < 16:
            continue
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        classes.append(class_index)
        scores.append(COLOR_SCORES[class_index])
    digest = zlib.crc32(np.ascontiguousarray(image).tobytes())
    rng = np.random.default_rng(digest)
    for _ in range(3):
        x0, x1 = sorted(rng.uniform(-0.05, 1.05, 2) * width)
        y0, y1 = sorted(rng.uniform(-0.05, 1.05, 2) * height)
        boxes.append([x0, y0, x1, y1])
        classes.append(int(rng.integers(0, 3)))
        scores.append(float(rng.uniform(1e-8, 0.5)))
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(classes, np.int64),
        np.asarray(scores, np.float32),
    ).sorted()


class FakeRunner(Runner):
    image_size = 64
    label_map = LABELS
    backend = "fake"

    def __init__(self, delay_s: float = 0.0, slow_width: int = 0, slow_s: float = 0.0):
        self.delay_s = delay_s
        self.slow_width, self.slow_s = slow_width, slow_s
        self.batch_sizes: list[int] = []

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.batch_sizes.append(len(images))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.slow_width and any(image.shape[1] == self.slow_width for image in images):
            time.sleep(self.slow_s)
        return [fake_detections(image) for image in images]


def make_runner(backend: str = "onnxruntime") -> FakeRunner:
    load_s = float(os.environ.get("BOXTUNE_FAKE_LOAD_S", "0"))
    marker = os.environ.get("BOXTUNE_FAKE_SLOW_AFTER_FIRST")
    if marker and _claim(marker):
        load_s = 0.0
    if load_s:
        time.sleep(load_s)
    return FakeRunner(
        delay_s=float(os.environ.get("BOXTUNE_FAKE_DELAY_S", "0")),
        slow_width=int(os.environ.get("BOXTUNE_FAKE_SLOW_WIDTH", "0")),
        slow_s=float(os.environ.get("BOXTUNE_FAKE_SLOW_S", "0")),
    )


def _claim(marker: str) -> bool:
    """True for the one process that creates ``marker`` first."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def make_failing_runner(backend: str = "onnxruntime") -> FakeRunner:
    class Failing(FakeRunner):
        def predict(self, images):
            raise RuntimeError("boom: the runner failed on purpose")

    return Failing()


def scene(
    width: int = 320, height: int = 240, objects: dict[int, tuple] | None = None, seed: int = 0
) -> np.ndarray:
    """A dark noisy background with solid rectangles {class_index: (x0, y0, x1, y1)}."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    colors = {0: (230, 20, 20), 1: (20, 230, 20), 2: (20, 20, 230)}
    for class_index, (x0, y0, x1, y1) in (objects or {}).items():
        image[y0:y1, x0:x1] = colors[class_index]
    return image


def encode(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


def make_broken_runner(backend: str = "onnxruntime") -> FakeRunner:
    from boxtune.errors import ModelError

    time.sleep(0.5)
    raise ModelError("weights file is corrupt", where="fake.safetensors", hint="re-export it")

"""Helpers for the engine tests: small real images with known boxes, hyperparameters."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image, ImageDraw

from boxtune.labels import LabelMap

SMALL = 128  # input size for unit tests: the same network, 6x fewer pixels than 320


def draw_scene(rng: np.random.Generator, size: int, count: int = 2):
    """A textured image with ellipses (class 0) and rectangles (class 1); boxes in pixels."""
    noise = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    boxes, labels = [], []
    for _ in range(count):
        w, h = rng.integers(size // 5, size // 2, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        label = int(rng.integers(0, 2))
        color = tuple(int(c) for c in rng.integers(150, 255, 3))
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        (draw.ellipse if label == 0 else draw.rectangle)(box, fill=color)
        boxes.append(box)
        labels.append(label)
    return np.array(image), np.array(boxes, np.float32), np.array(labels, np.int64)


def make_batch(seed: int, batch: int, size: int, empty_index: int | None = None):
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for i in range(batch):
        image, boxes, labels = draw_scene(rng, size, count=0 if i == empty_index else 2)
        images.append(torch.from_numpy(image).permute(2, 0, 1))
        targets.append(
            {
                "boxes": torch.from_numpy(boxes).reshape(-1, 4),
                "labels": torch.from_numpy(labels),
                "image_id": i,
                "orig_size": (size, size),
            }
        )
    return torch.stack(images), targets


def hp(**overrides):
    values = dict(
        optimizer="adam", learning_rate=0.001, momentum=0.9, beta_1=0.9, beta_2=0.999,
        epsilon=1e-7, rho=0.95, initial_accumulator_value=0.1,
    )  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


LABELS = LabelMap.from_categories({3: "ellipse", 7: "rectangle"})

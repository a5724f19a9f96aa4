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
        images.append(image)
        targets.append(
            {
                "boxes": boxes.reshape(-1, 4),
                "labels": labels,
                "image_id": i,
                "orig_size": (size, size),
            }
        )
    return np.stack(images), targets  # the loader's format: uint8 [B, S, S, 3] + numpy targets


def torch_batch(seed: int, batch: int, size: int, empty_index: int | None = None):
    """make_batch as the networks themselves take it: uint8 [B, 3, S, S] and torch targets."""
    images, targets = make_batch(seed, batch, size, empty_index)
    tensors = [
        {**t, "boxes": torch.from_numpy(t["boxes"]), "labels": torch.from_numpy(t["labels"])}
        for t in targets
    ]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), tensors


def hp(**overrides):
    values = dict(
        optimizer="adam", learning_rate=0.001, momentum=0.9, beta_1=0.9, beta_2=0.999,
        epsilon=1e-7, rho=0.95, initial_accumulator_value=0.1, gradient_clip_norm=10.0,
    )  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


LABELS = LabelMap.from_categories({3: "ellipse", 7: "rectangle"})

"""An offline, deterministic, photo-like detection dataset for demos, tests and benchmarks.

Four shape classes (circle, triangle, square, star) drawn with varied size (about 20-150 px),
aspect ratio, rotation, colour and texture, partly occluding each other, on textured
backgrounds with lighting changes, noise and line clutter; about one image in ten is a negative.
Colours come from one palette shared by all classes, so colour never identifies the class.

Image ``i`` depends only on ``(seed, i)``: the first 10 images of a 200-image dataset equal
a 10-image dataset with the same seed, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from boxtune.data.io import DatasetWriter, encode_image

CLASSES = {1: "circle", 2: "triangle", 3: "square", 4: "star"}
PALETTE = np.array(
    [
        (220, 50, 47),
        (38, 139, 210),
        (133, 153, 0),
        (181, 137, 0),
        (211, 54, 130),
        (42, 161, 152),
        (240, 240, 235),
        (30, 30, 35),
        (203, 75, 22),
        (108, 113, 196),
        (120, 80, 40),
        (150, 150, 150),
    ],
    dtype=np.float32,
)
NEGATIVE_SHARE = 0.1
MIN_SIDE, MAX_SIDE = 20.0, 150.0
# JPEG with fixed settings: PIL's encoder is deterministic for identical pixels.
JPEG_OPTIONS = {"quality": 92, "subsampling": 0, "optimize": False}
SUPERSAMPLE = 2  # masks are drawn at 2x and averaged down for anti-aliased edges


@dataclass
class _Shape:
    category_id: int
    points: np.ndarray  # [K, 2] polygon in image pixels
    box: tuple[float, float, float, float]


def _unit_polygon(category_id: int) -> np.ndarray:
    if category_id == 1:
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if category_id == 2:
        t = np.array([-90, 30, 150]) * math.pi / 180
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if category_id == 3:
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    t = np.arange(10) * math.pi / 5 - math.pi / 2
    radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 [H, W, 3] photo-like backdrop: smooth clouds, gradients or stripes."""
    ys, xs = (a.astype(np.float32) for a in np.ogrid[0:height, 0:width])
    c1, c2 = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / max(width, height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = c1 + (c2 - c1) * ramp[..., None]
    kind = rng.integers(0, 3)
    if kind == 0:  # blurred clouds blending a third colour in, like an out-of-focus scene
        cell = int(rng.integers(32, 110))
        small = rng.uniform(0, 255, size=(height // cell + 2, width // cell + 2))
        field = Image.fromarray(small.astype(np.uint8)).resize((width, height), Image.BICUBIC)
        weight = np.asarray(field, dtype=np.float32)[..., None] / 255.0
        c3 = rng.uniform(20, 235, size=3).astype(np.float32)
        image = image * (1 - weight) + c3 * weight
    elif kind == 1:  # stripes / wood grain
        period = rng.uniform(6, 40)
        phase = rng.uniform(0, 2 * math.pi)
        a2 = rng.uniform(0, math.pi)
        wave = np.sin((xs * math.cos(a2) + ys * math.sin(a2)) * 2 * math.pi / period + phase)
        image = image + rng.uniform(10, 35) * wave[..., None]
    fine = rng.normal(0, 1, size=(height // 4 + 1, width // 4 + 1)).astype(np.float32)
    grain = np.asarray(
        Image.fromarray(fine).resize((width, height), Image.BILINEAR), dtype=np.float32
    )
    image = image + rng.uniform(4, 14) * grain[..., None]
    return image


def _place_shapes(rng: np.random.Generator, width: int, height: int) -> list[_Shape]:
    count = 0 if rng.random() < NEGATIVE_SHARE else int(rng.integers(1, 7))
    shapes: list[_Shape] = []
    attempts = 0
    while len(shapes) < count and attempts < count * 25:
        attempts += 1
        category_id = int(rng.integers(1, 5))
        side = math.exp(rng.uniform(math.log(MIN_SIDE), math.log(MAX_SIDE)))
        aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
        half_w, half_h = side * math.sqrt(aspect) / 2, side / math.sqrt(aspect) / 2
        rotation = rng.uniform(0, 2 * math.pi)
        pts = _unit_polygon(category_id) * (half_w, half_h)
        rot = np.array(
            [[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]]
        )
        pts = pts @ rot.T
        # The box's longer side, not the shape's, stays within [MIN_SIDE, MAX_SIDE].
        extent = float(np.ptp(pts, axis=0).max())
        pts = pts * (min(MAX_SIDE, max(MIN_SIDE, extent)) / extent)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        pts = pts + np.array([cx, cy])
        x1, y1 = pts.min(axis=0)
        x2, y2 = pts.max(axis=0)
        box = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        area = (x2 - x1) * (y2 - y1)
        visible = (box[2] - box[0]) * (box[3] - box[1])
        if box[2] - box[0] < 12 or box[3] - box[1] < 12 or visible < 0.7 * area:
            continue  # mostly cut off by the border
        if any(
            _covered_share(s.box, box) > 0.45 or _covered_share(box, s.box) > 0.8 for s in shapes
        ):
            continue  # would hide an earlier object, or sit almost entirely on one
        shapes.append(_Shape(category_id, pts, box))
    return shapes


def _covered_share(under: tuple, over: tuple) -> float:
    """Share of ``under``'s area covered by ``over``."""
    iw = min(under[2], over[2]) - max(under[0], over[0])
    ih = min(under[3], over[3]) - max(under[1], over[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((under[2] - under[0]) * (under[3] - under[1]))


def _mask(points: np.ndarray, x0: int, y0: int, w: int, h: int, line: int = 0) -> np.ndarray:
    """Anti-aliased float mask [h, w] of a polygon (filled, or only its outline of width line)."""
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    # Pixel centres sit at +0.5: shift so the mask matches the float box coordinates.
    scaled = [((x - x0) * SUPERSAMPLE - 0.5, (y - y0) * SUPERSAMPLE - 0.5) for x, y in points]
    if line:
        draw.line([*scaled, scaled[0]], fill=255, width=line * SUPERSAMPLE, joint="curve")
    else:
        draw.polygon(scaled, fill=255)
    small = canvas.resize((w, h), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _draw_shape(rng: np.random.Generator, image: np.ndarray, shape: _Shape) -> None:
    height, width = image.shape[:2]
    x0, y0 = max(0, math.floor(shape.box[0]) - 2), max(0, math.floor(shape.box[1]) - 2)
    x1 = min(width, math.ceil(shape.box[2]) + 2)
    y1 = min(height, math.ceil(shape.box[3]) + 2)
    w, h = x1 - x0, y1 - y0
    colour = PALETTE[rng.integers(0, len(PALETTE))] * rng.uniform(0.75, 1.15)
    fill = np.broadcast_to(colour, (h, w, 3)).copy()
    style = rng.integers(0, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if style == 1:  # shading gradient, as if lit from one side
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / max(w, h)
        fill *= (0.75 + 0.5 * (ramp - ramp.min()))[..., None]
    elif style == 2:  # stripes in a second palette colour
        other = PALETTE[rng.integers(0, len(PALETTE))]
        period = rng.uniform(4, 14)
        stripes = np.sin((xs + ys * rng.uniform(-1, 1)) * 2 * math.pi / period) > 0
        fill[stripes] = 0.6 * fill[stripes] + 0.4 * other
    alpha = _mask(shape.points, x0, y0, w, h)[..., None]
    region = image[y0:y1, x0:x1]
    region[:] = region * (1 - alpha) + fill * alpha
    if rng.random() < 0.4:  # dark or light outline
        edge = _mask(shape.points, x0, y0, w, h, line=int(rng.integers(1, 3)))[..., None]
        tone = 20.0 if rng.random() < 0.7 else 235.0
        region[:] = region * (1 - edge) + tone * edge


def _draw_clutter(rng: np.random.Generator, image: Image.Image) -> None:
    """Line segments and arcs: edges that are not objects."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(0, 4))):
        colour = tuple(int(c) for c in PALETTE[rng.integers(0, len(PALETTE))])
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.5:
            length, angle = rng.uniform(30, 200), rng.uniform(0, 2 * math.pi)
            end = (x + length * math.cos(angle), y + length * math.sin(angle))
            draw.line([(x, y), end], fill=colour, width=int(rng.integers(1, 5)))
        else:
            r = rng.uniform(15, 60)
            start = float(rng.uniform(0, 360))
            draw.arc(
                [x - r, y - r, x + r, y + r],
                start,
                start + float(rng.uniform(40, 160)),
                fill=colour,
                width=int(rng.integers(1, 4)),
            )


def render_sample_image(seed: int, index: int) -> tuple[Image.Image, list[_Shape]]:
    """Image ``index`` of the sample dataset with ``seed`` and its shapes (boxes in pixels)."""
    rng = np.random.default_rng([seed, index])
    width = int(rng.integers(20, 31)) * 16  # 320..480
    height = int(rng.integers(15, 31)) * 16  # 240..480
    canvas = _background(rng, width, height)
    clutter = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    _draw_clutter(rng, clutter)
    canvas = np.asarray(clutter, dtype=np.float32).copy()
    shapes = _place_shapes(rng, width, height)
    for shape in shapes:
        _draw_shape(rng, canvas, shape)
    # Lighting: a soft spotlight or vignette over everything, objects included.
    ys, xs = (a.astype(np.float32) for a in np.ogrid[0:height, 0:width])
    lx, ly = rng.uniform(0, width), rng.uniform(0, height)
    dist = np.sqrt((xs - lx) ** 2 + (ys - ly) ** 2) / np.float32(math.hypot(width, height))
    light = np.float32(rng.uniform(0.9, 1.25)) - np.float32(rng.uniform(0.2, 0.6)) * dist
    canvas = canvas * light[..., None]
    canvas += rng.standard_normal(size=canvas.shape, dtype=np.float32) * rng.uniform(2, 8)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    return image, shapes


def generate_sample_dataset(
    dst: str | os.PathLike, images: int = 200, seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a sample dataset of ``images`` JPEGs to ``dst`` (atomically) and return ``dst``."""
    if images < 1:
        raise ValueError("images must be at least 1")
    with DatasetWriter(dst, categories=CLASSES, overwrite=overwrite) as writer:
        # tqdm shows progress on a terminal only (disable=None), never in logs or tests.
        for index in tqdm(range(images), desc="sample", unit="img", disable=None, leave=False):
            image, shapes = render_sample_image(seed, index)
            boxes = [(tuple(round(v, 2) for v in s.box), s.category_id) for s in shapes]
            writer.add_image(
                f"{index:05d}.jpg",
                encode_image(image, "JPEG", **JPEG_OPTIONS),
                boxes=boxes,
                size=image.size,
            )
    return Path(dst)

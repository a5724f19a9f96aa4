"""Draw an endpoint answer (normalized boxes, classes, scores, labels) onto its image."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_MIN_SCORE = 0.25


def class_color(index: int) -> tuple[int, int, int]:
    """Well separated, stable colours: golden-ratio steps around the hue circle."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_answer(
    pixels: np.ndarray,
    answer: dict,
    labels: Sequence[str],
    *,
    min_score: float = DEFAULT_MIN_SCORE,
) -> Image.Image:
    """The image with every box scoring >= min_score drawn and captioned "label score"."""
    image = Image.fromarray(pixels).convert("RGB")
    width, height = image.size
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(width, height) / 200))
    font = _font(max(12, round(min(width, height) / 40)))
    items = zip(answer["normalized_boxes"], answer["classes"], answer["scores"], strict=True)
    for box, cls, score in items:
        if score < min_score:
            continue
        xmin, ymin, xmax, ymax = box
        corners = (xmin * width, ymin * height, xmax * width, ymax * height)
        color = class_color(int(cls))
        draw.rectangle(corners, outline=color, width=line)
        name = labels[int(cls)] if 0 <= int(cls) < len(labels) else f"class {int(cls)}"
        caption = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        text_w, text_h = right - left, bottom - top
        x = min(max(corners[0], 0), max(width - text_w - 4, 0))
        y = corners[1] - text_h - 4 if corners[1] - text_h - 4 >= 0 else corners[1]
        draw.rectangle((x, y, x + text_w + 4, y + text_h + 4), fill=color)
        draw.text((x + 2 - left, y + 2 - top), caption, fill=(0, 0, 0), font=font)
    return image


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()

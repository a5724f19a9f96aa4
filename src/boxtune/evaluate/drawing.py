"""Detections drawn on images: true positives green, false positives red, misses orange dashed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from boxtune.detections import Detections
from boxtune.evaluate.matching import ImageMatch

TRUE_POSITIVE = (46, 160, 67)
FALSE_POSITIVE = (220, 38, 38)
MISS = (255, 165, 0)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw, box: Sequence[float], colour, width: int, dash: int = 7
) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min(1.0, (k + 1) / steps)
            draw.line(
                [
                    (ax + (bx - ax) * t0, ay + (by - ay) * t0),
                    (ax + (bx - ax) * t1, ay + (by - ay) * t1),
                ],
                fill=colour,
                width=width,
            )


class _Labels:
    """Places box labels so that they do not cover each other: drawn after every box."""

    def __init__(self, draw: ImageDraw.ImageDraw, font, bounds: tuple[int, int]):
        self.draw, self.font, self.bounds = draw, font, bounds
        self.placed: list[tuple[float, float, float, float]] = []

    def _free(self, rect: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = rect
        return all(x1 <= a or x0 >= c or y1 <= b or y0 >= d for a, b, c, d in self.placed)

    def add(self, box: Sequence[float], text: str, colour, *, below: bool = False) -> None:
        """Above the box's top edge (or inside its bottom edge with ``below``), else the
        nearest free slot going down, else where it was first meant to go."""
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        w, h = right - left + 4, bottom - top + 4
        x = min(max(0.0, box[0]), self.bounds[0] - w)
        first = box[3] - h if below else (box[1] - h if box[1] - h >= 0 else box[1])
        candidates = [first + k * h for k in range(6)] + [first - k * h for k in range(1, 4)]
        candidates = [min(max(0.0, y), self.bounds[1] - h) for y in candidates]
        y = next((c for c in candidates if self._free((x, c, x + w, c + h))), candidates[0])
        self.placed.append((x, y, x + w, y + h))
        self.draw.rectangle([x, y, x + w, y + h], fill=colour)
        text_colour = (0, 0, 0) if colour == MISS else (255, 255, 255)
        self.draw.text((x + 2 - left, y + 2 - top), text, fill=text_colour, font=self.font)


def draw_matches(
    pixels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    detections: Detections,
    match: ImageMatch,
    names: Sequence[str],
    max_side: int = 384,
) -> Image.Image:
    """A thumbnail of the image with the matched detections (at the score threshold) drawn.

    ``detections`` and ``match`` must be the same detections ``match_image`` saw. Confusions
    (right place, wrong class) are drawn as false positives with the true class in the label.
    """
    image = Image.fromarray(pixels).convert("RGB")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
    draw = ImageDraw.Draw(image)
    width = max(2, round(max_side / 160))
    labels = _Labels(draw, _font(max(10, round(max_side / 30))), image.size)

    def scaled(box) -> list[float]:
        return [float(v) * scale for v in box]

    def caption(det: int) -> str:
        return f"{names[detections.classes[det]]} {detections.scores[det]:.2f}"

    confused_truth = {det: gt for det, gt in match.confusions}
    wrong = [d for d, _ in match.confusions] + list(match.false_positives)
    for gt in match.misses:
        _dashed_rectangle(draw, scaled(gt_boxes[gt]), MISS, width)
    for det in wrong:
        draw.rectangle(scaled(detections.boxes[det]), outline=FALSE_POSITIVE, width=width)
    for det, _ in match.true_positives:
        draw.rectangle(scaled(detections.boxes[det]), outline=TRUE_POSITIVE, width=width)
    # Labels after all boxes, errors first so that they get the best places.
    for gt in match.misses:
        labels.add(scaled(gt_boxes[gt]), f"missed {names[gt_classes[gt]]}", MISS, below=True)
    for det in wrong:
        text = caption(det)
        if det in confused_truth:
            text += f" (is {names[gt_classes[confused_truth[det]]]})"
        labels.add(scaled(detections.boxes[det]), text, FALSE_POSITIVE)
    for det, _ in match.true_positives:
        labels.add(scaled(detections.boxes[det]), caption(det), TRUE_POSITIVE)
    return image

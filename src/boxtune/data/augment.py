"""Training-time augmentation on uint8 HxWx3 arrays with boxes kept exact.

Geometric steps (zoom in by a random crop, zoom out onto a padded canvas, horizontal flip)
move boxes with the pixels; boxes are clipped to the image and dropped when mostly cut off.
Photometric steps (brightness, contrast, saturation, hue) are one 3x3 colour matrix, so they
cost a single pass over the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

Window = tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation; ``AugmentConfig.off()`` disables all."""

    horizontal_flip: float = 0.5
    crop_probability: float = 0.5
    crop_min_scale: float = 0.3  # smallest crop, as a share of the image area
    crop_aspect_jitter: float = 0.3  # crops' aspect ratio varies by up to exp(+-this)
    zoom_out_probability: float = 0.2
    zoom_out_max: float = 1.6  # canvas side / image side; makes objects smaller
    zoom_out_fill: tuple[int, int, int] | None = None  # None: the image's mean colour
    min_visibility: float = 0.4  # keep a cut box only if this share of its area remains
    min_box_size: float = 2.0  # pixels, in the output image
    photometric_probability: float = 0.8
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 0.04  # share of the colour circle

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(
            horizontal_flip=0.0,
            crop_probability=0.0,
            zoom_out_probability=0.0,
            photometric_probability=0.0,
        )

    def __post_init__(self) -> None:
        for name in (
            "horizontal_flip",
            "crop_probability",
            "zoom_out_probability",
            "photometric_probability",
            "min_visibility",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name}={value} must be in [0, 1]")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ValueError("AugmentConfig.crop_min_scale must be in (0, 1]")
        if self.zoom_out_max < 1.0:
            raise ValueError("AugmentConfig.zoom_out_max must be >= 1")


# Named settings, selectable with the ``augmentation`` hyperparameter ("True" = "standard").
PRESETS: dict[str, AugmentConfig] = {
    "flip": AugmentConfig(
        crop_probability=0.0, zoom_out_probability=0.0, photometric_probability=0.0
    ),
    "light": AugmentConfig(
        crop_probability=0.3,
        crop_min_scale=0.6,
        zoom_out_probability=0.1,
        zoom_out_max=1.3,
        photometric_probability=0.5,
        brightness=0.15,
        contrast=0.15,
        saturation=0.15,
        hue=0.02,
    ),
    "standard": AugmentConfig(),
    "strong": AugmentConfig(
        crop_probability=0.7,
        crop_min_scale=0.2,
        zoom_out_probability=0.3,
        zoom_out_max=2.0,
        brightness=0.35,
        contrast=0.35,
        saturation=0.5,
        hue=0.06,
    ),
}


# -- boxes -----------------------------------------------------------------------------------
def clip_and_filter(
    boxes: np.ndarray,
    labels: np.ndarray,
    original_area: np.ndarray,
    width: int,
    height: int,
    min_visibility: float,
    min_box_size: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image; drop those that keep too little area or are too small."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    w = clipped[:, 2] - clipped[:, 0]
    h = clipped[:, 3] - clipped[:, 1]
    area = w * h
    keep = (w >= min_box_size) & (h >= min_box_size)
    keep &= area >= min_visibility * np.maximum(original_area, 1e-6)
    return clipped[keep].astype(np.float32), labels[keep]


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# -- geometric -------------------------------------------------------------------------------
def crop_window(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    window: Window,
    *,
    min_visibility: float = 0.4,
    min_box_size: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop ``window`` (inside the image) and resize it back to the image's size."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = window
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    out = np.array(
        Image.fromarray(image).resize((width, height), Image.BILINEAR, box=(x0, y0, x1, y1))
    )
    moved = (boxes - np.array([x0, y0, x0, y0], np.float32)) * np.array(
        [sx, sy, sx, sy], np.float32
    )
    kept, kept_labels = clip_and_filter(
        moved, labels, _areas(moved), width, height, min_visibility, min_box_size
    )
    return out, kept, kept_labels


def zoom_out(
    image: np.ndarray,
    boxes: np.ndarray,
    factor: float,
    offset: tuple[float, float],
    fill: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the image by ``factor`` and place it on a canvas of the same size at ``offset``
    (each in [0, 1]: share of the free space left of / above the image)."""
    height, width = image.shape[:2]
    inner_w, inner_h = max(1, round(width / factor)), max(1, round(height / factor))
    ox = round(offset[0] * (width - inner_w))
    oy = round(offset[1] * (height - inner_h))
    canvas = np.empty_like(image)
    canvas[:] = np.array(fill, dtype=np.uint8)
    small = Image.fromarray(image).resize((inner_w, inner_h), Image.BILINEAR)
    canvas[oy : oy + inner_h, ox : ox + inner_w] = np.asarray(small)
    scale = np.array([inner_w / width, inner_h / height] * 2, np.float32)
    moved = boxes * scale + np.array([ox, oy, ox, oy], np.float32)
    return canvas, moved.astype(np.float32)


def flip_horizontal(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def random_crop_window(
    rng: np.random.Generator, width: int, height: int, config: AugmentConfig
) -> Window:
    scale = rng.uniform(config.crop_min_scale, 1.0)
    aspect = math.exp(rng.uniform(-config.crop_aspect_jitter, config.crop_aspect_jitter))
    w = min(width, width * math.sqrt(scale * aspect))
    h = min(height, height * math.sqrt(scale / aspect))
    x0 = rng.uniform(0, width - w)
    y0 = rng.uniform(0, height - h)
    return (x0, y0, x0 + w, y0 + h)


# -- photometric -----------------------------------------------------------------------------
_GREY = np.array([0.299, 0.587, 0.114], np.float32)
_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
)
_FROM_YIQ = np.linalg.inv(_TO_YIQ).astype(np.float32)


def colour_transform(
    image: np.ndarray, brightness: float, contrast: float, saturation: float, hue_turns: float
) -> np.ndarray:
    """Apply brightness (factor), contrast (factor around the mean grey), saturation (factor)
    and a hue rotation (in turns) as one affine colour map."""
    angle = 2 * math.pi * hue_turns
    cos, sin = math.cos(angle), math.sin(angle)
    # In YIQ, saturation scales the chroma (I, Q) and hue rotates it.
    chroma = np.array(
        [
            [1, 0, 0],
            [0, saturation * cos, -saturation * sin],
            [0, saturation * sin, saturation * cos],
        ],
        np.float32,
    )
    matrix = brightness * contrast * (_FROM_YIQ @ chroma @ _TO_YIQ)
    pil = Image.fromarray(image)
    # The mean of an 8x reduced copy is as good as the full mean and 60x cheaper.
    mean_grey = float(
        np.asarray(pil.reduce(8) if min(pil.size) >= 16 else pil).reshape(-1, 3).mean(axis=0)
        @ _GREY
    )
    offset = brightness * (1 - contrast) * mean_grey
    # PIL applies a 3x4 colour matrix in C with rounding and clipping to uint8.
    coefficients = tuple(float(v) for row in range(3) for v in (*matrix[row], offset))
    return np.array(pil.convert("RGB", matrix=coefficients))


def random_photometric(
    image: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    return colour_transform(
        image,
        brightness=rng.uniform(1 - config.brightness, 1 + config.brightness),
        contrast=rng.uniform(1 - config.contrast, 1 + config.contrast),
        saturation=rng.uniform(1 - config.saturation, 1 + config.saturation),
        hue_turns=rng.uniform(-config.hue, config.hue),
    )


# -- the pipeline ------------------------------------------------------------------------------
def augment_sample(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random augmentation of ``image`` (uint8 HxWx3) with boxes float32 [N, 4] in pixels.

    The output image has the input's size. Crops are retried a few times so that an image with
    boxes keeps at least one.
    """
    height, width = image.shape[:2]
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    roll = rng.random()
    if roll < config.zoom_out_probability:
        fill = config.zoom_out_fill or tuple(int(v) for v in image.reshape(-1, 3).mean(axis=0))
        factor = rng.uniform(1.0, config.zoom_out_max)
        image, boxes = zoom_out(image, boxes, factor, (rng.random(), rng.random()), fill)
        boxes, labels = clip_and_filter(
            boxes, labels, _areas(boxes), width, height, 0.0, config.min_box_size
        )
    elif roll < config.zoom_out_probability + config.crop_probability * (
        1 - config.zoom_out_probability
    ):
        for _ in range(10):
            window = random_crop_window(rng, width, height, config)
            out, kept, kept_labels = crop_window(
                image,
                boxes,
                labels,
                window,
                min_visibility=config.min_visibility,
                min_box_size=config.min_box_size,
            )
            if len(kept) or not len(boxes):
                image, boxes, labels = out, kept, kept_labels
                break
    if rng.random() < config.horizontal_flip:
        image, boxes = flip_horizontal(image, boxes)
    if rng.random() < config.photometric_probability:
        image = random_photometric(image, rng, config)
    return image, boxes, labels

"""Opening dataset images safely: format allow-list, pixel limit, full decode checks."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Formats every part of boxtune (training, serving, the managed contract) reads the same way.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")
# Far above any photo a detector is trained on; a decompression bomb claims far more.
DEFAULT_MAX_PIXELS = 64_000_000


def max_image_pixels() -> int:
    """The pixel limit: ``BOXTUNE_MAX_IMAGE_PIXELS`` or 64 megapixels."""
    value = os.environ.get("BOXTUNE_MAX_IMAGE_PIXELS")
    return int(value) if value else DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


class ImageProblem(Exception):
    """Why an image cannot be used; ``code`` matches the validation issue codes."""

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def inspect_image(path: Path, *, decode: bool = True, max_pixels: int | None = None) -> ImageInfo:
    """Format and size of ``path``; with ``decode`` the pixels are decoded to catch truncation.

    The size is checked against the pixel limit before any pixel is decoded.
    """
    limit = max_pixels or max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                info = ImageInfo(str(img.format), int(img.width), int(img.height))
                if info.format not in SUPPORTED_FORMATS:
                    raise ImageProblem(
                        "unsupported-format",
                        f"unsupported image format {info.format}",
                        f"convert it to PNG or JPEG (supported: {', '.join(SUPPORTED_FORMATS)})",
                    )
                if info.width * info.height > limit:
                    raise ImageProblem(
                        "too-many-pixels",
                        f"image is {info.width}x{info.height} = {info.width * info.height:,} "
                        f"pixels, over the limit of {limit:,} (possible decompression bomb)",
                        "downscale the image, or raise BOXTUNE_MAX_IMAGE_PIXELS if it is genuine",
                    )
                if decode:
                    img.load()
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageProblem(
            "too-many-pixels",
            f"image refused before decoding, possible decompression bomb ({exc})",
            "downscale the image, or raise BOXTUNE_MAX_IMAGE_PIXELS if it is genuine",
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageProblem(
            "unreadable-image",
            "not an image file (no decoder recognises it)",
            "replace it with a PNG or JPEG, or remove it and its annotations",
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(
            "unreadable-image",
            f"image cannot be decoded ({exc}); it may be truncated",
            "re-export or re-download the file, or remove it and its annotations",
        ) from exc
    return info


def load_rgb(path: Path, *, target_size: int | None = None) -> Image.Image:
    """Decode ``path`` as RGB. With ``target_size`` JPEGs decode at a reduced scale that is still
    at least ``target_size`` on each side (DCT scaling, several times faster for large photos).
    """
    with Image.open(path) as img:
        if target_size and img.format == "JPEG":
            img.draft("RGB", (target_size, target_size))
        return img.convert("RGB")

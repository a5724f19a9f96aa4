"""Images, read the same way everywhere: one format list, one pixel limit, one decoder.

Dataset validation, the training loader, evaluation and the server (``boxtune.serve.codec``)
all open images here, so a file accepted by one is accepted by all and gives the same pixels.
Framework-free (PIL and numpy).

- Formats: only rasters whose Pillow decoders need no external programs (EPS would run
  Ghostscript); the JPEG opener also reads MPO, the multi-picture JPEG of many phone cameras.
- Pixel limit: checked from the header, before any pixel is decoded (decompression bombs).
- Byte limit: the file's size, checked with stat before a byte is read (a huge or sparse file);
  only regular files are read (a FIFO or a device could be read for ever).
- Pixels: every mode ends up as 8-bit RGB; 16-bit and float greyscale are scaled, not clipped;
  transparent pixels become white, as browsers and viewers show them. EXIF orientation is not
  applied: boxes refer to the stored pixel grid (annotations, their width/height, the managed
  service's clients all use it).
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image

from boxtune.errors import os_error

# The one list of accepted formats (Pillow format names).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# Their file-name suffixes, for finding images in folders (the bytes still decide the format).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Formats Pillow reports for files that one of the openers above reads.
_OPENED_AS = {"MPO": "JPEG"}

# The one pixel limit: 50 MP, a 8660 x 5773 photo, far above any detector input; a
# decompression bomb claims far more. The environment variable overrides it everywhere.
MAX_IMAGE_PIXELS = 50_000_000
PIXEL_LIMIT_ENV = "BOXTUNE_MAX_IMAGE_PIXELS"

# The one byte limit: 256 MiB. An image within the pixel limit takes at most 200 MB even
# stored uncompressed (50 MP x 4 bytes, an RGBA BMP or TIFF); as a JPEG it is ~20 MB.
MAX_IMAGE_BYTES = 256 * 1024 * 1024
BYTE_LIMIT_ENV = "BOXTUNE_MAX_IMAGE_BYTES"

_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
_TOO_LARGE_HINT = f"downscale the image, or raise {PIXEL_LIMIT_ENV} if it is genuine"


def pixel_limit() -> int:
    """The pixel limit: ``$BOXTUNE_MAX_IMAGE_PIXELS`` or :data:`MAX_IMAGE_PIXELS`."""
    value = os.environ.get(PIXEL_LIMIT_ENV)
    return int(value) if value else MAX_IMAGE_PIXELS


def byte_limit() -> int:
    """The byte limit of an image file: ``$BOXTUNE_MAX_IMAGE_BYTES`` or :data:`MAX_IMAGE_BYTES`."""
    value = os.environ.get(BYTE_LIMIT_ENV)
    return int(value) if value else MAX_IMAGE_BYTES


def is_supported(format_name: str | None) -> bool:
    """Whether images Pillow reports as ``format_name`` are accepted."""
    return _OPENED_AS.get(str(format_name), str(format_name)) in SUPPORTED_FORMATS


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


class ImageProblem(ValueError):
    """Why an image cannot be used; ``code`` matches the validation issue codes.

    A ValueError, so that callers catching decoder errors (OSError, ValueError) catch it too.
    """

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def open_image(fp: str | os.PathLike | IO[bytes]) -> Image.Image:
    """Open a file or binary file object lazily (header only), with the openers of
    :data:`SUPPORTED_FORMATS` only: other decoders never see the bytes.

    Raises Pillow's errors (``UnidentifiedImageError`` for other formats); use as a context
    manager to close the file.
    """
    Image.init()  # registers every plugin once; Image.open(formats=...) expects them loaded
    return Image.open(fp, formats=SUPPORTED_FORMATS)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` (any mode) as an 8-bit RGB image; decodes it if it is not loaded yet."""
    if image.mode in _WIDE_GREY_MODES:
        # 16-bit / float greyscale: scale to 8 bits instead of clipping at 255
        values = np.asarray(image, dtype=np.float32)
        top = float(values.max()) if values.size else 0.0
        scaled = values * (255.0 / top) if top > 255.0 else values
        grey = np.clip(scaled, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels onto white, as browsers and viewers show them
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """``image`` (any mode) as H x W x 3 uint8 RGB pixels."""
    return np.ascontiguousarray(np.asarray(to_rgb(image), dtype=np.uint8))


def _refused_format(path: str | os.PathLike) -> str | None:
    """The name of a format Pillow knows but boxtune refuses, for a clearer message."""
    try:
        with Image.open(path) as img:  # header only: the refused decoder never decodes
            return None if is_supported(img.format) else str(img.format)
    except Exception:
        return None


@contextmanager
def _quiet_bomb_warning() -> Iterator[None]:
    # Pillow warns above its own limit; ours is checked explicitly (and may be higher).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


@contextmanager
def _problems(path: str | os.PathLike) -> Iterator[None]:
    """Turn decoder errors on ``path`` into :class:`ImageProblem`."""
    try:
        yield
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageProblem(
            "too-many-pixels",
            f"image refused before decoding, possible decompression bomb ({exc})",
            _TOO_LARGE_HINT,
        ) from exc
    except Image.UnidentifiedImageError as exc:
        refused = _refused_format(path)
        if refused is not None:
            raise ImageProblem(
                "unsupported-format",
                f"unsupported image format {refused}",
                f"convert it to PNG or JPEG (supported: {', '.join(SUPPORTED_FORMATS)})",
            ) from exc
        raise ImageProblem(
            "unreadable-image",
            "not an image file (no decoder recognises it)",
            "replace it with a PNG or JPEG, or remove it and its annotations",
        ) from exc
    except OSError as exc:
        if exc.errno is None:  # Pillow's own decoder errors ("image file is truncated")
            raise _undecodable(exc) from exc
        refused = os_error(exc, action="reading the image", path=path)  # permissions, …
        raise ImageProblem("unreadable-image", refused.message, refused.hint or "") from exc
    except (SyntaxError, ValueError) as exc:
        raise _undecodable(exc) from exc


def _undecodable(exc: Exception) -> ImageProblem:
    return ImageProblem(
        "unreadable-image",
        f"image cannot be decoded ({exc}); it may be truncated",
        "re-export or re-download the file, or remove it and its annotations",
    )


def check_file(source: str | os.PathLike | IO[bytes], *, max_bytes: int | None = None) -> int:
    """The size of an image file (a path, or an open file), by stat: before a byte is read it
    must be a regular file within the byte limit. Raises :class:`ImageProblem` (and OSError
    when the path cannot be stat'ed)."""
    limit = max_bytes or byte_limit()
    info = os.stat(source) if isinstance(source, str | os.PathLike) else os.fstat(source.fileno())
    if stat.S_ISDIR(info.st_mode):
        raise ImageProblem(
            "not-a-file", "the path is a directory, not an image file", "name an image file"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ImageProblem(
            "not-a-file",
            "not a regular file (a pipe, socket or device), so it is not read",
            "copy the image into a regular file",
        )
    if info.st_size > limit:
        raise ImageProblem(
            "too-many-bytes",
            f"file is {info.st_size:,} bytes, over the limit of {limit:,} bytes "
            "(refused before reading it)",
            f"downscale or re-compress the image, or raise {BYTE_LIMIT_ENV} if it is genuine",
        )
    return int(info.st_size)


def _check_pixels(img: Image.Image, limit: int) -> None:
    if img.width * img.height > limit:
        raise ImageProblem(
            "too-many-pixels",
            f"image is {img.width}x{img.height} = {img.width * img.height:,} "
            f"pixels, over the limit of {limit:,} (possible decompression bomb)",
            _TOO_LARGE_HINT,
        )


def inspect_image(
    path: str | os.PathLike, *, decode: bool = True, max_pixels: int | None = None
) -> ImageInfo:
    """Format and size of ``path``; with ``decode`` the pixels are decoded to catch truncation.

    The file is checked against the byte limit before it is read, its size against the pixel
    limit before any pixel is decoded. Raises :class:`ImageProblem`.
    """
    limit = max_pixels or pixel_limit()
    with _problems(path), _quiet_bomb_warning():
        check_file(path)
        with open_image(path) as img:
            info = ImageInfo(str(img.format), int(img.width), int(img.height))
            _check_pixels(img, limit)
            if decode:
                img.load()
    return info


def load_rgb(
    path: str | os.PathLike, *, target_size: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Decode ``path`` as an RGB image (the pixels every part of boxtune sees).

    With ``target_size`` JPEGs decode at a reduced scale that is still at least ``target_size``
    on each side (DCT scaling, several times faster for large photos). Raises
    :class:`ImageProblem` (a ValueError) when the file cannot be used.
    """
    limit = max_pixels or pixel_limit()
    with _problems(path):
        check_file(path)
        with open_image(path) as img:
            _check_pixels(img, limit)
            if target_size and img.format in ("JPEG", "MPO"):
                img.draft("RGB", (target_size, target_size))
            return to_rgb(img)


def decode_open_file(handle: IO[bytes], *, max_pixels: int | None = None) -> tuple[str, np.ndarray]:
    """The format and H x W x 3 uint8 RGB pixels of an open image file, decoded from the file
    (its bytes are never all in memory at once): the header's size is checked against the pixel
    limit before any pixel is decoded. Check the file first (:func:`check_file`).

    Raises :class:`ImageProblem` for too many pixels; Pillow's own errors for the rest, so that
    a caller can word them for its audience (``boxtune.serve.codec``)."""
    limit = max_pixels or pixel_limit()
    try:
        with _quiet_bomb_warning(), open_image(handle) as img:
            _check_pixels(img, limit)
            img.load()
            return str(img.format), to_rgb_array(img)
    except Image.DecompressionBombError as exc:  # Pillow's own, higher, limit: say it as ours
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise ImageProblem(
            "too-many-pixels",
            f"image is {size}, over the limit of {limit:,} (possible decompression bomb)",
            _TOO_LARGE_HINT,
        ) from exc


def load_rgb_array(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of ``path``, as runners take them; see :func:`load_rgb`."""
    return np.ascontiguousarray(np.asarray(load_rgb(path, max_pixels=max_pixels), np.uint8))


__all__ = [
    "BYTE_LIMIT_ENV",
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PIXEL_LIMIT_ENV",
    "SUPPORTED_FORMATS",
    "ImageInfo",
    "ImageProblem",
    "byte_limit",
    "check_file",
    "decode_open_file",
    "inspect_image",
    "is_supported",
    "load_rgb",
    "load_rgb_array",
    "open_image",
    "pixel_limit",
    "to_rgb",
    "to_rgb_array",
]

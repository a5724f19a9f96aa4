"""Request bodies to RGB pixels: safe image decoding with precise reasons for refusals.

The formats, the pixel limit and the decoding to RGB are those of :mod:`boxtune.data.images`,
shared with training and evaluation: the formats whose Pillow decoders need no external
programs (EPS would run Ghostscript), the pixel count checked from the header before any pixel
is decoded (decompression bombs), every mode ending up as 8-bit RGB. EXIF orientation is
deliberately not applied: boxes refer to the stored pixel grid, as in training data
(annotations and their width/height) and in the managed service, whose clients scale by the
stored size. This module adds what a server needs: error classes with HTTP meanings and
messages that say what was sent, the header read on its own (:func:`probe_image`: the pixels a
decode will hold, for the server's pixel budget) and decoding to a bounded working size
(``max_side``): JPEGs are decoded at a reduced scale by the decoder itself (1/2, 1/4, 1/8,
never below ``max_side`` a side), an image of more than ``max_side`` squared pixels is then
downscaled, each axis to at most ``max_side``, and :class:`DecodedImage` keeps the stored size
so that boxes are answered in the stored image's pixels (:meth:`DecodedImage.to_original`).
The runners stretch each image to their square input, so capping each axis on its own loses
nothing they use.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from boxtune.data.images import SUPPORTED_FORMATS, open_image, pixel_limit, to_rgb, to_rgb_array
from boxtune.detections import Detections
from boxtune.errors import BoxtuneError

_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
# The working size: at least twice the model's input a side (the runners stretch every image to
# S x S), and never below this: images of up to 1024 x 1024 pixels reach the runner untouched.
WORKING_SIDE_FACTOR = 2
MIN_WORKING_SIDE = 1024
# Formats whose decoder scales by itself (DCT scaling: 1/2, 1/4, 1/8), and modes that Pillow
# resizes with a real filter ("1" and "P" would be resized by nearest neighbour)
_DRAFT_FORMATS = ("JPEG", "MPO")
_FILTERED_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")


class ImageDecodeError(BoxtuneError):
    """The body is not a decodable image (HTTP 400)."""


class ImageTooLargeError(BoxtuneError):
    """The image has more pixels than the configured limit (HTTP 413)."""


@dataclass(frozen=True)
class DecodedImage:
    """RGB pixels (H x W x 3 uint8, stored orientation) and the source format.

    ``stored_size``: (width, height) of the image in the file where ``pixels`` were decoded
    or scaled to a smaller working size; None when they are the stored pixels. ``width`` and
    ``height`` are always the stored image's: answers are in its pixels.
    """

    pixels: np.ndarray
    format: str
    stored_size: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        return int(self.stored_size[0] if self.stored_size else self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.stored_size[1] if self.stored_size else self.pixels.shape[0])

    @property
    def reduced(self) -> bool:
        return self.stored_size is not None and self.stored_size != (
            int(self.pixels.shape[1]),
            int(self.pixels.shape[0]),
        )

    def to_original(self, detections: Detections) -> Detections:
        """``detections`` in ``pixels``' pixels -> in the stored image's pixels."""
        if not self.reduced:
            return detections
        sx = self.width / int(self.pixels.shape[1])
        sy = self.height / int(self.pixels.shape[0])
        scale = np.array([sx, sy, sx, sy], np.float64)
        boxes = (detections.boxes.astype(np.float64) * scale).astype(np.float32)
        return Detections(boxes, detections.classes, detections.scores, detections.model_output)


@dataclass(frozen=True)
class ImageHeader:
    """What the header says before any pixel is decoded: the format, the stored size and the
    size the decoder will produce (smaller for a JPEG decoded at a reduced scale)."""

    format: str
    width: int
    height: int
    decoded_width: int
    decoded_height: int

    @property
    def decoded_pixels(self) -> int:
        """The pixels a decode holds at once, before any downscaling to the working size."""
        return self.decoded_width * self.decoded_height

    def working_size(self, max_side: int | None) -> tuple[int, int]:
        """(width, height) of the pixels that :func:`decode_image` returns."""
        return _working_size((self.decoded_width, self.decoded_height), max_side)


def _working_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    width, height = size
    if not max_side or width * height <= max_side * max_side:
        return width, height
    return min(width, max_side), min(height, max_side)


def working_side(image_size: int | None) -> int:
    """The working size ``max_side`` for a model whose input is ``image_size``: an image of
    more than its square in pixels is scaled down, each axis to at most it."""
    return max(WORKING_SIDE_FACTOR * int(image_size or 0), MIN_WORKING_SIDE)


def sniff_format(body: bytes) -> str | None:
    """The format named by the body's magic bytes, or None."""
    for signature, name in _SIGNATURES.items():
        if body.startswith(signature):
            return name
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "WEBP"
    return None


def sniff_unsupported(body: bytes) -> str | None:
    """Name well-known formats that are refused on purpose, for a clearer message."""
    if body[4:8] == b"ftyp":
        brand = body[8:12].decode("ascii", "replace")
        return "AVIF" if brand.startswith("avi") else f"HEIF/HEIC (ISO media brand {brand!r})"
    head = body[:256].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "PDF"
    if head.startswith((b"%!ps", b"\xc5\xd0\xd3\xc6")):
        return "PostScript/EPS"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in body[:1024].lower()):
        return "SVG (a vector format)"
    return None


def describe_prefix(body: bytes, count: int = 8) -> str:
    """The first bytes as hex plus a printable rendering, for error messages."""
    head = body[:count]
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    return f"{head.hex(' ')} ({printable!r})"


def probe_image(
    body: bytes,
    *,
    max_pixels: int | None = None,
    max_side: int | None = None,
    source: str = "request body",
) -> ImageHeader:
    """The header of ``body`` (no pixel is decoded), or the ImageDecodeError /
    ImageTooLargeError that :func:`decode_image` raises for what the header shows.

    ``max_side`` as in :func:`decode_image`: the decoded size is the reduced one it will use.
    """
    image, fmt = _open(body, max_pixels, source)
    with image:
        width, height = image.size
        try:
            _draft(image, max_side)
        except Exception as exc:
            raise _corrupt(fmt, exc, body, source) from exc
        return ImageHeader(fmt, width, height, *image.size)


def decode_image(
    body: bytes,
    *,
    max_pixels: int | None = None,
    source: str = "request body",
    max_side: int | None = None,
) -> DecodedImage:
    """Decode ``body`` into RGB pixels or raise ImageDecodeError / ImageTooLargeError.

    ``max_pixels``: the pixel limit; None for the shared one (``boxtune.data.images``).
    ``max_side``: the working size, None for the stored pixels. A JPEG at least twice as large
    on both axes is decoded at a reduced scale (each side still at least ``max_side``); then
    an image of more than ``max_side`` squared pixels is downscaled (bilinear), each axis
    longer than ``max_side`` to it. The answer keeps the stored size
    (:attr:`DecodedImage.stored_size`) to map boxes back.
    """
    image, fmt = _open(body, max_pixels, source)
    stored = image.size
    try:
        _draft(image, max_side)
        image.load()
        pixels = _working_pixels(image, max_side)
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels or pixel_limit(), source) from exc
    except Exception as exc:
        raise _corrupt(fmt, exc, body, source) from exc
    finally:
        image.close()  # the decoded pixels at the stored size go now, not when collected
    working = (int(pixels.shape[1]), int(pixels.shape[0]))
    return DecodedImage(
        pixels=pixels, format=fmt, stored_size=None if working == stored else stored
    )


def _open(body: bytes, max_pixels: int | None, source: str) -> tuple[Image.Image, str]:
    """The lazily opened image (header read, size checked) and its format name."""
    if max_pixels is None:
        max_pixels = pixel_limit()
    if not body:
        raise ImageDecodeError(
            "empty body: no image bytes were sent",
            where=source,
            hint="send the raw bytes of one JPEG or PNG image as the body",
        )
    sniffed = sniff_format(body)
    try:
        image = open_image(io.BytesIO(body))
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels, source) from exc
    except UnidentifiedImageError as exc:
        unsupported = sniff_unsupported(body)
        if unsupported is not None:
            raise ImageDecodeError(
                f"unsupported image format: {unsupported}",
                where=source,
                hint=f"convert it to JPEG or PNG first (accepted: {', '.join(SUPPORTED_FORMATS)})",
            ) from exc
        if sniffed is None:
            raise ImageDecodeError(
                f"not an image: starts with bytes {describe_prefix(body)}",
                where=source,
                hint="send the raw bytes of a JPEG or PNG "
                f"(accepted: {', '.join(SUPPORTED_FORMATS)})",
            ) from exc
        raise ImageDecodeError(
            f"truncated or corrupt {sniffed}: its header cannot be read "
            f"({len(body):,} bytes received)",
            where=source,
            hint="send the whole file; if it is complete, re-encode it",
        ) from exc
    except Exception as exc:  # decoders raise assorted errors on hostile headers
        raise _corrupt(sniffed or "image", exc, body, source) from exc
    fmt = image.format or sniffed or "image"
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(
            f"{fmt} declares an empty size {width}x{height}", where=source, hint="re-encode it"
        )
    if width * height > max_pixels:
        raise _too_large(f"{fmt} of {width}x{height} pixels", max_pixels, source)
    return image, fmt


def _draft(image: Image.Image, max_side: int | None) -> None:
    """Let a JPEG decoder scale by itself (1/2, 1/4, 1/8) to no less than ``max_side``."""
    if not max_side or image.format not in _DRAFT_FORMATS:
        return
    if min(image.size) >= 2 * max_side:
        image.draft("RGB", (max_side, max_side))


def _working_pixels(image: Image.Image, max_side: int | None) -> np.ndarray:
    """H x W x 3 uint8 of the loaded ``image`` at its working size. Downscales in
    a mode of few bytes per pixel where the filter allows, before the RGB conversion, and
    closes each image at the stored size as soon as the next one exists."""
    size = _working_size(image.size, max_side)
    if size == image.size:
        return to_rgb_array(image)
    filterable = _filterable(image)
    if filterable is not image:
        image.close()
    small = filterable.resize(size, Image.Resampling.BILINEAR)
    filterable.close()
    return to_rgb_array(small)


def _filterable(image: Image.Image) -> Image.Image:
    """``image`` in a mode that Pillow resizes with the filter asked for."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if alpha else "RGB")
    if image.mode not in _FILTERED_MODES:
        return to_rgb(image)  # 16-bit and float greyscale: scaled to 8 bits first
    return image


def _too_large(detail: str, max_pixels: int, source: str) -> ImageTooLargeError:
    declared = re.search(r"\((\d+) pixels\)", detail)  # Pillow's own bomb message
    if declared:
        detail = f"an image of {int(declared.group(1)):,} pixels"
    return ImageTooLargeError(
        f"image too large: {detail} exceeds the limit of {max_pixels:,} pixels",
        where=source,
        hint="downscale the image before sending it, or raise the server's --max-image-pixels",
    )


def _corrupt(fmt: str, exc: Exception, body: bytes, source: str) -> ImageDecodeError:
    text = str(exc) or type(exc).__name__
    truncated = isinstance(exc, EOFError) or "truncated" in text.lower()
    if truncated:
        message = f"truncated {fmt}: the data ends early ({len(body):,} bytes received; {text})"
        hint = "the upload was cut short: send the whole file"
    else:
        message = f"corrupt {fmt}: {text}"
        hint = "the file is damaged; re-encode it (e.g. save it again with an image editor)"
    return ImageDecodeError(message, where=source, hint=hint)

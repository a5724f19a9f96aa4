"""Request bodies to RGB pixels: safe image decoding with precise reasons for refusals.

The formats, the pixel limit and the decoding to RGB are those of :mod:`boxtune.data.images`,
shared with training and evaluation: the formats whose Pillow decoders need no external
programs (EPS would run Ghostscript), the pixel count checked from the header before any pixel
is decoded (decompression bombs), every mode ending up as 8-bit RGB. EXIF orientation is
deliberately not applied: boxes refer to the stored pixel grid, as in training data
(annotations and their width/height) and in the managed service, whose clients scale by the
stored size. This module adds what a server needs: error classes with HTTP meanings and
messages that say what was sent.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from boxtune.data.images import SUPPORTED_FORMATS, open_image, pixel_limit, to_rgb_array
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


class ImageDecodeError(BoxtuneError):
    """The body is not a decodable image (HTTP 400)."""


class ImageTooLargeError(BoxtuneError):
    """The image has more pixels than the configured limit (HTTP 413)."""


@dataclass(frozen=True)
class DecodedImage:
    """RGB pixels (H x W x 3 uint8, stored orientation) and the source format."""

    pixels: np.ndarray
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


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


def decode_image(
    body: bytes, *, max_pixels: int | None = None, source: str = "request body"
) -> DecodedImage:
    """Decode ``body`` into RGB pixels or raise ImageDecodeError / ImageTooLargeError.

    ``max_pixels``: the pixel limit; None for the shared one (``boxtune.data.images``).
    """
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
    try:
        image.load()
        pixels = to_rgb_array(image)
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels, source) from exc
    except Exception as exc:
        raise _corrupt(fmt, exc, body, source) from exc
    return DecodedImage(pixels=pixels, format=fmt)


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

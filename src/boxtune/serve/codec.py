"""Request bodies to RGB pixels: safe image decoding with precise reasons for refusals.

Only raster formats whose Pillow decoders need no external programs are accepted (EPS would
run Ghostscript), the pixel count is checked from the header before any pixel is decoded
(decompression bombs) and every mode ends up as 8-bit RGB. EXIF orientation is deliberately
not applied: boxes refer to the stored pixel grid, as in training data (annotations and their
width/height) and in the managed service, whose clients scale by the stored size.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from boxtune.errors import BoxtuneError

# Formats Pillow decodes natively without helper programs (the JPEG opener also reads MPO, the
# multi-picture JPEG that many phone cameras write).
SAFE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: a 8660 x 5773 photo; far above any detector input

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
    body: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, source: str = "request body"
) -> DecodedImage:
    """Decode ``body`` into RGB pixels or raise ImageDecodeError / ImageTooLargeError."""
    if not body:
        raise ImageDecodeError(
            "empty body: no image bytes were sent",
            where=source,
            hint="send the raw bytes of one JPEG or PNG image as the body",
        )
    sniffed = sniff_format(body)
    Image.init()  # registers every plugin once; Image.open(formats=...) expects them loaded
    try:
        image = Image.open(io.BytesIO(body), formats=SAFE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels, source) from exc
    except UnidentifiedImageError as exc:
        unsupported = sniff_unsupported(body)
        if unsupported is not None:
            raise ImageDecodeError(
                f"unsupported image format: {unsupported}",
                where=source,
                hint=f"convert it to JPEG or PNG first (accepted: {', '.join(SAFE_FORMATS)})",
            ) from exc
        if sniffed is None:
            raise ImageDecodeError(
                f"not an image: starts with bytes {describe_prefix(body)}",
                where=source,
                hint=f"send the raw bytes of a JPEG or PNG (accepted: {', '.join(SAFE_FORMATS)})",
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
        pixels = _to_rgb_array(image)
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels, source) from exc
    except Exception as exc:
        raise _corrupt(fmt, exc, body, source) from exc
    return DecodedImage(pixels=pixels, format=fmt)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float greyscale: scale to 8 bits instead of clipping at 255
        values = np.asarray(image, dtype=np.float32)
        top = float(values.max()) if values.size else 0.0
        scaled = values * (255.0 / top) if top > 255.0 else values
        grey = np.clip(scaled, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels onto white, as browsers and viewers show them
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


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

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from serve_fakes import encode, scene

from boxtune.serve.codec import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    sniff_format,
)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_decodes_every_accepted_format_to_rgb(fmt):
    image = scene(64, 48, {0: (8, 8, 40, 30)})
    decoded = decode_image(encode(image, fmt))
    assert decoded.pixels.shape == (48, 64, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.format == fmt
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless
        assert np.array_equal(decoded.pixels, image)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.fromarray(scene(40, 30)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 256)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "1" else "PNG")
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (30, 40, 3)
    assert decoded.pixels.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled to 8 bits, not clipped to white
        assert decoded.pixels.max() <= 255 and decoded.pixels.mean() < 200


def test_transparent_pixels_become_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)
    decoded = decode_image(encode(rgba, "PNG"))
    assert tuple(decoded.pixels[0, 0]) == (255, 0, 0)
    assert tuple(decoded.pixels[9, 9]) == (255, 255, 255)


def test_exif_orientation_is_ignored_like_training_and_the_managed_service():
    # Boxes are answered in the stored pixel grid: the one the training annotations and the
    # dataset validator use, and the one the managed notebook scales by (PIL's .size).
    image = scene(60, 20, {0: (0, 0, 10, 20)})  # landscape, red band on the left
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (20, 60, 3)  # as stored, not as displayed
    assert decoded.pixels[:, :10, 0].mean() > 150
    assert decoded.pixels[:, -10:, 0].mean() < 100


def test_empty_body():
    with pytest.raises(ImageDecodeError, match="empty body"):
        decode_image(b"")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html><body>oops</body></html>", r"not an image: starts with bytes 3c 68 74 6d"),
        (b'{"image": "base64..."}', r"not an image: starts with bytes 7b 22"),
        (b"\x00" * 50, "not an image"),
    ],
)
def test_not_an_image_names_the_first_bytes(body, expected):
    with pytest.raises(ImageDecodeError, match=expected) as info:
        decode_image(body)
    assert info.value.hint


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_truncated_image_says_truncated_and_format(fmt):
    data = encode(scene(128, 96, seed=3), fmt)
    with pytest.raises(ImageDecodeError, match=f"truncated {fmt}"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize("cut", [12, 20, 40])
def test_truncated_header_is_reported_with_format(cut):
    data = encode(scene(64, 64), "PNG")
    with pytest.raises(ImageDecodeError, match=r"truncated (or corrupt )?PNG"):
        decode_image(data[:cut])


def test_corrupt_png_data():
    data = bytearray(encode(scene(64, 64, seed=1), "PNG"))
    data[100:140] = b"\xff" * 40  # inside the IDAT stream
    with pytest.raises(ImageDecodeError, match="PNG"):
        decode_image(bytes(data))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_rejected_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, "PNG")  # 100 MP, ~100 kB compressed
    with pytest.raises(ImageTooLargeError, match=r"10000x10000 .*limit of 1,000,000 pixels"):
        decode_image(buffer.getvalue(), max_pixels=1_000_000)


def test_bomb_beyond_pillows_own_limit_is_reported_as_too_large():
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400 MP > 2x Pillow's limit
    with pytest.raises(ImageTooLargeError, match="400,000,000 pixels"):
        decode_image(buffer.getvalue(), max_pixels=10**12)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        # EPS: Pillow would run Ghostscript on it
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript/EPS"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF/HEIC"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    ],
)
def test_well_known_refused_formats_are_named(body, name):
    with pytest.raises(ImageDecodeError, match=f"unsupported image format: {name}") as info:
        decode_image(body)
    assert "JPEG or PNG" in info.value.hint


def test_sniff_format():
    assert sniff_format(encode(scene(8, 8), "PNG")) == "PNG"
    assert sniff_format(encode(scene(8, 8), "JPEG")) == "JPEG"
    assert sniff_format(encode(scene(8, 8), "WEBP")) == "WEBP"
    assert sniff_format(b"hello") is None

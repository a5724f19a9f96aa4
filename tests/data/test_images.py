"""One format list, one pixel limit, one decoder: datasets, the loader, evaluation and serving
read every accepted image the same way."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boxtune.data import check_dataset, make_loader, read_dataset
from boxtune.data.images import (
    MAX_IMAGE_PIXELS,
    SUPPORTED_FORMATS,
    ImageProblem,
    inspect_image,
    is_supported,
    load_rgb,
    load_rgb_array,
    pixel_limit,
)
from boxtune.errors import DatasetError
from boxtune.evaluate.inference import read_pixels
from boxtune.serve.codec import ImageTooLargeError, decode_image


def _scene(width: int = 64, height: int = 48) -> np.ndarray:
    array = np.zeros((height, width, 3), np.uint8)
    array[:] = (40, 90, 160)
    array[8:30, 10:40] = (230, 200, 20)
    return array


def _transparent_gif() -> Image.Image:
    """A palette image whose right half is transparent."""
    image = Image.fromarray(_scene()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pixels = np.asarray(image).copy()
    pixels[:, 32:] = 7
    image = Image.fromarray(pixels, mode="P")
    image.putpalette(Image.fromarray(_scene()).convert("P", colors=8).getpalette())
    image.info["transparency"] = 7
    return image


def _encode(image: Image.Image | np.ndarray, fmt: str, **params) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _grey16() -> Image.Image:
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    return Image.fromarray(values)


FILES = {
    "photo.tif": lambda: _encode(_scene(), "TIFF"),
    "deep.tif": lambda: _encode(_grey16(), "TIFF"),  # 16-bit greyscale
    "flat.gif": lambda: _encode(_scene(), "GIF"),
    "clear.gif": lambda: _encode(_transparent_gif(), "GIF", transparency=7),
    "phone.jpg": lambda: _encode(  # MPO: the multi-picture JPEG of phone cameras
        Image.fromarray(_scene()), "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))]
    ),
}


@pytest.fixture
def mixed_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for index, (name, make) in enumerate(FILES.items(), start=1):
        (root / "images" / name).write_bytes(make())
        images.append({"id": index, "file_name": name, "width": 64, "height": 48})
        annotations.append({"image_id": index, "bbox": [10, 8, 40, 30], "category_id": 1})
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def test_one_format_list_with_what_the_server_always_accepted() -> None:
    assert SUPPORTED_FORMATS == ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
    assert is_supported("MPO") and not is_supported("EPS") and not is_supported(None)


def test_tiff_gif_and_mpo_images_pass_validation(mixed_dataset: Path) -> None:
    report = check_dataset(mixed_dataset).report
    assert report.ok, [i.render() for i in report.errors]
    ds = read_dataset(mixed_dataset)
    assert sorted(r.file_name for r in ds.images) == sorted(FILES)


def test_the_loader_decodes_tiff_and_gif(mixed_dataset: Path) -> None:
    ds = read_dataset(mixed_dataset)
    images, targets = next(iter(make_loader(ds, ds.label_map, 32, len(ds))))
    images = np.asarray(images)
    assert images.dtype == np.uint8 and images.size == len(FILES) * 32 * 32 * 3
    assert len(targets) == len(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_dataset_evaluation_and_server_see_the_same_pixels(mixed_dataset: Path, name) -> None:
    path = mixed_dataset / "images" / name
    served = decode_image(path.read_bytes()).pixels
    assert served.shape == (48, 64, 3)
    assert np.array_equal(load_rgb_array(path), served)
    assert np.array_equal(np.asarray(load_rgb(path)), served)
    assert np.array_equal(read_pixels(path), served)
    if name == "photo.tif":  # lossless
        assert np.array_equal(served, _scene())
    if name == "deep.tif":  # scaled to 8 bits, not clipped to white
        assert served.max() == 255 and served.mean() < 200
    if name == "clear.gif":  # transparent pixels are white, as viewers show them
        assert (served[:, 40:] == 255).all() and not (served[:, :30] == 255).all()


def test_jpeg_draft_decoding_keeps_at_least_the_target_size(mixed_dataset: Path) -> None:
    image = load_rgb(mixed_dataset / "images" / "phone.jpg", target_size=16)
    assert image.mode == "RGB" and min(image.size) >= 16 and image.size[0] < 64


def test_refused_formats_are_named(tmp_path: Path) -> None:
    path = tmp_path / "a.ppm"
    Image.fromarray(_scene()).save(path, "PPM")
    for read in (inspect_image, load_rgb, load_rgb_array):
        with pytest.raises(ImageProblem, match="unsupported image format PPM") as info:
            read(path)
        assert info.value.code == "unsupported-format" and isinstance(info.value, ValueError)
    with pytest.raises(DatasetError, match="unsupported image format PPM"):
        read_pixels(path)


def test_one_pixel_limit_that_the_environment_overrides(tmp_path: Path, monkeypatch) -> None:
    from boxtune.serve.config import ServeConfig
    from boxtune.serve.predictor import InProcessPredictor

    monkeypatch.delenv("BOXTUNE_MAX_IMAGE_PIXELS", raising=False)
    assert pixel_limit() == MAX_IMAGE_PIXELS == 50_000_000
    assert ServeConfig(model="m").max_image_pixels == MAX_IMAGE_PIXELS

    monkeypatch.setenv("BOXTUNE_MAX_IMAGE_PIXELS", "1000")
    path = tmp_path / "a.png"
    Image.fromarray(_scene()).save(path)  # 64 x 48 = 3072 pixels
    for read in (inspect_image, load_rgb, load_rgb_array):
        with pytest.raises(ImageProblem, match="over the limit of 1,000") as info:
            read(path)
        assert info.value.code == "too-many-pixels"
        assert "BOXTUNE_MAX_IMAGE_PIXELS" in info.value.hint
    with pytest.raises(ImageTooLargeError, match="limit of 1,000 pixels"):
        decode_image(path.read_bytes())
    assert ServeConfig(model="m").max_image_pixels == 1000
    assert InProcessPredictor(runner=None).max_image_pixels == 1000  # type: ignore[arg-type]
    # the server's own setting (serve --max-image-pixels) still wins for the server
    assert decode_image(path.read_bytes(), max_pixels=5000).pixels.shape == (48, 64, 3)
    assert ServeConfig(model="m", max_image_pixels=5000).max_image_pixels == 5000

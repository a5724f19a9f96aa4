"""Fixtures for the dataset layer: a generated sample dataset and a raw-dataset builder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boxtune.data import generate_sample_dataset

TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-image sample dataset, generated once per session."""
    return generate_sample_dataset(tmp_path_factory.mktemp("sample") / "ds", images=40, seed=3)


@pytest.fixture
def test_output() -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT


def solid_image(width: int, height: int, colour=(120, 130, 140)) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[:] = colour
    return Image.fromarray(array)


@pytest.fixture
def make_image() -> Callable[..., Image.Image]:
    return solid_image


RawBuilder = Callable[..., Path]


@pytest.fixture
def raw_dataset(tmp_path: Path) -> RawBuilder:
    """Build a dataset folder from files and an annotations document, without any checks.

    ``files`` maps file names under images/ to PIL images or raw bytes; ``annotations`` is a dict
    (dumped as JSON), a string (written as is) or None (no annotations.json).
    """

    def build(
        files: dict[str, Image.Image | bytes] | None = None,
        annotations: dict | str | None = None,
        *,
        name: str = "ds",
        images_dir: bool = True,
    ) -> Path:
        root = tmp_path / name
        root.mkdir()
        if images_dir:
            (root / "images").mkdir()
        for file_name, content in (files or {}).items():
            path = root / "images" / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                content.save(path)
        if isinstance(annotations, dict):
            (root / "annotations.json").write_text(json.dumps(annotations, indent=1))
        elif isinstance(annotations, str):
            (root / "annotations.json").write_text(annotations)
        return root

    return build


@pytest.fixture
def good_dataset(raw_dataset: RawBuilder) -> Path:
    """Two 100x80 PNGs, three boxes in two classes with names, and one negative."""
    files = {
        "a.png": solid_image(100, 80),
        "b.png": solid_image(100, 80),
        "neg.png": solid_image(64, 48),
    }
    doc = {
        "images": [
            {"file_name": "a.png", "height": 80, "width": 100, "id": 1},
            {"file_name": "b.png", "height": 80, "width": 100, "id": 2},
            {"file_name": "neg.png", "height": 48, "width": 64, "id": 3},
        ],
        "annotations": [
            {"image_id": 1, "bbox": [10, 10, 50, 40], "category_id": 1},
            {"image_id": 1, "bbox": [60, 20, 90, 70], "category_id": 2},
            {"image_id": 2, "bbox": [5.5, 6.5, 30.25, 70], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    return raw_dataset(files, doc)

"""Small generated datasets shared by the trainer's tests (generated once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.s3_server import s3_bucket, s3_env, s3_server

from boxtune.data import generate_sample_dataset

__all__ = ["s3_bucket", "s3_env", "s3_server"]


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """12 images, 4 classes."""
    return generate_sample_dataset(
        tmp_path_factory.mktemp("train-data") / "sample", images=12, seed=3
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """8 images: the fewest that still split into training and validation for every class."""
    return generate_sample_dataset(tmp_path_factory.mktemp("train-tiny") / "tiny", images=8, seed=4)


@pytest.fixture(scope="session")
def renamed_classes_dataset(tmp_path_factory, tiny_dataset) -> Path:
    """The tiny dataset with one class renamed: a different class set."""
    target = tmp_path_factory.mktemp("train-data-renamed") / "renamed"
    shutil.copytree(tiny_dataset, target)
    annotations = json.loads((target / "annotations.json").read_text())
    annotations["categories"][-1]["name"] = "hexagon"
    (target / "annotations.json").write_text(json.dumps(annotations))
    return target

"""Fixtures of the container tests: the sample dataset and an isolated BOXTUNE_HOME (the
fake ``/opt/ml`` trees are built by ``container_tree.make_ml_root``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxtune.data import generate_sample_dataset


@pytest.fixture(autouse=True)
def boxtune_home(tmp_path, monkeypatch):
    home = tmp_path / "boxtune-home"
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    for name in ("BOXTUNE_ML_ROOT", "BOXTUNE_MODEL_ID", "BOXTUNE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """12 images, 4 classes."""
    return generate_sample_dataset(
        tmp_path_factory.mktemp("container-data") / "sample", images=12, seed=3
    )

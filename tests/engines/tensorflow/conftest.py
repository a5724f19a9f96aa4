"""Shared by the TensorFlow engine's tests: one artifact of the pretrained person detector."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def person_artifact(tmp_path_factory) -> Path:
    """The pretrained person detector as is (300 px, its own class head), written as an
    artifact once: its export (SavedModel, ONNX, both checked) takes tens of seconds. Tests read
    it and never change it; one that would gets a ``shutil.copytree`` of it."""
    from boxtune.artifacts import write_artifact
    from boxtune.catalog import TF_PERSON_MODEL_ID, get_spec
    from boxtune.engines import get_engine
    from boxtune.engines.tensorflow.engine import pretrained_label_map

    spec = get_spec(TF_PERSON_MODEL_ID)
    detector = get_engine("tensorflow").create(
        spec, pretrained_label_map(spec), reinitialize_head=False
    )
    return write_artifact(detector, tmp_path_factory.mktemp("person-artifact") / "model")

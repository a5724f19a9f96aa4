"""Fixtures: an isolated BOXTUNE_HOME and small default-model detectors."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import LABELS, SMALL, hp, make_batch

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.engines import get_engine


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "boxtune-home"))


@pytest.fixture
def small_detector():
    torch.manual_seed(0)
    return get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), LABELS, image_size=SMALL)


@pytest.fixture(scope="session")
def trained_small_detector():
    """A default-model detector fitted for a few steps, so that scores are well separated."""
    torch.manual_seed(0)
    detector = get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), LABELS, image_size=SMALL)
    detector.set_trainable(False)
    detector.configure_optimizer(hp(learning_rate=0.002))
    images, targets = make_batch(0, 2, SMALL)
    for _ in range(8):
        detector.train_step(images, targets)
    return detector

"""Fixtures for the evaluation tests: a generated sample dataset on disk and a report of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluate_fixtures import FakeRunner, training_history, write_shapes_dataset

from boxtune.data import read_dataset

TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory):
    """20 images of coloured shapes (4 negatives) written to disk, read as a user would."""
    root = tmp_path_factory.mktemp("evaluate-sample") / "data"
    return read_dataset(write_shapes_dataset(root, images=20, seed=11))


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory: pytest.TempPathFactory, sample_dataset) -> Path:
    """A full report (with history) of the fake runner on the sample dataset."""
    from boxtune.evaluate import evaluate_model

    output = tmp_path_factory.mktemp("evaluate-report") / "report"
    runner = FakeRunner(sample_dataset, seed=1)
    evaluate_model(
        runner,
        sample_dataset,
        output,
        history=training_history(),
        context={"model": "fake-runner", "data": str(sample_dataset.root)},
        progress=False,
    )
    return output


@pytest.fixture
def test_output() -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT

"""Failing training jobs: a non-zero exit status, the precise reason (what, where, how to fix)
in ``/opt/ml/output/failure`` and on stderr, and no artifact, whole or half-written, in
``/opt/ml/model``. The first three run the container's real process; the rest call the same
command in this process (they fail before any training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_process import run_training
from container_tree import TINY, make_ml_root

from boxtune.artifacts import MANIFEST_FILE, load_artifact, write_artifact
from boxtune.cli import main as cli_main
from boxtune.container import publish
from boxtune.container.publish import STAGING_PREFIX, publish_artifact
from boxtune.labels import LabelMap


def _failure(root: Path) -> str:
    return (root / "output" / "failure").read_text()


def _assert_no_artifact(root: Path) -> None:
    model_dir = root / "model"
    assert not model_dir.exists() or list(model_dir.iterdir()) == []


def test_bad_hyperparameter_values_are_named_with_the_file(sample_dataset, tmp_path):
    root = make_ml_root(
        tmp_path / "ml",
        training=sample_dataset,
        hyperparameters={**TINY, "epochs": "abc", "learning_rat": "0.1"},
    )
    result = run_training(root)
    assert result.returncode == 1
    failure = _failure(root)
    assert failure.startswith(f"{root}/input/config/hyperparameters.json: 2 invalid")
    assert "epochs='abc': not an integer; allowed: an integer >= 1" in failure
    assert "learning_rat='0.1': unknown name (did you mean learning_rate?)" in failure
    assert "hint: " in failure
    assert failure.strip() in result.stderr
    _assert_no_artifact(root)


def test_missing_training_channel(sample_dataset, tmp_path):
    root = make_ml_root(tmp_path / "ml", validation=sample_dataset, hyperparameters=TINY)
    result = run_training(root)
    assert result.returncode == 1
    failure = _failure(root)
    assert failure.startswith(
        f"{root}/input/config/inputdataconfig.json: the job has no 'training' channel "
        "(its channels: validation)"
    )
    assert "estimator.fit({'training': " in failure
    assert failure.strip() in result.stderr
    _assert_no_artifact(root)


def test_corrupt_annotations(sample_dataset, tmp_path):
    root = make_ml_root(tmp_path / "ml", training=sample_dataset, hyperparameters=TINY)
    annotations = root / "input/data/training/annotations.json"
    annotations.write_text(annotations.read_text()[:300])  # cut short mid-record
    result = run_training(root)
    assert result.returncode == 1
    failure = _failure(root)
    assert failure.startswith(f"{root}/input/data/training: dataset is invalid")
    assert "annotations.json, line" in failure and "invalid JSON at line" in failure
    assert failure.strip() in result.stderr
    _assert_no_artifact(root)


def _fail_in_process(root: Path, capsys) -> str:
    assert cli_main(["container", "train", "--root", str(root)]) == 1
    failure = _failure(root)
    assert failure.strip() in capsys.readouterr().err
    _assert_no_artifact(root)
    return failure


def test_several_hosts_are_refused(sample_dataset, tmp_path, capsys):
    root = make_ml_root(
        tmp_path / "ml", training=sample_dataset, hyperparameters=TINY, hosts=("algo-1", "algo-2")
    )
    failure = _fail_in_process(root, capsys)
    assert failure.startswith(f"{root}/input/config/resourceconfig.json: the job runs on 2 hosts")
    assert "(algo-1, algo-2)" in failure and "instance_count=1" in failure


def test_pipe_mode_is_refused(sample_dataset, tmp_path, capsys):
    root = make_ml_root(
        tmp_path / "ml",
        training=sample_dataset,
        hyperparameters=TINY,
        input_data_config={"training": {"TrainingInputMode": "Pipe"}},
    )
    failure = _fail_in_process(root, capsys)
    assert failure.startswith(f"{root}/input/config/inputdataconfig.json: channel 'training'")
    assert "uses TrainingInputMode Pipe" in failure and "input_mode='File'" in failure


def test_a_channel_named_train_gets_the_rename_hint(sample_dataset, tmp_path, capsys):
    root = make_ml_root(
        tmp_path / "ml", hyperparameters=TINY, input_data_config={"train": {}, "validation": {}}
    )
    failure = _fail_in_process(root, capsys)
    assert "the job has no 'training' channel (its channels: train, validation)" in failure
    assert "rename the channel 'train' to 'training'" in failure


def test_a_model_channel_without_an_artifact(sample_dataset, tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a model")
    root = make_ml_root(tmp_path / "ml", training=sample_dataset, model=junk, hyperparameters=TINY)
    failure = _fail_in_process(root, capsys)
    assert failure.startswith(
        f"{root}/input/data/model: the 'model' channel holds no boxtune artifact (found: notes.txt)"
    )


def test_an_unknown_model_id_names_the_hyperparameter(sample_dataset, tmp_path, capsys):
    root = make_ml_root(
        tmp_path / "ml",
        training=sample_dataset,
        hyperparameters={**TINY, "model_id": "pytorch-od1-efficientdet-lite9"},
    )
    failure = _fail_in_process(root, capsys)
    assert failure.startswith(
        f"{root}/input/config/hyperparameters.json (model_id): unknown model_id "
        "'pytorch-od1-efficientdet-lite9'"
    )
    assert "did you mean pytorch-od1-efficientdet-lite0-320" in failure


def test_unknown_model_id_from_the_environment(sample_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BOXTUNE_MODEL_ID", "no-such-model")
    root = make_ml_root(tmp_path / "ml", training=sample_dataset, hyperparameters=TINY)
    failure = _fail_in_process(root, capsys)
    assert failure.startswith("$BOXTUNE_MODEL_ID: unknown model_id 'no-such-model'")


def test_hyperparameters_that_are_not_an_object(sample_dataset, tmp_path, capsys):
    root = make_ml_root(tmp_path / "ml", training=sample_dataset)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(["epochs", "1"]))
    failure = _fail_in_process(root, capsys)
    assert failure.startswith(
        f"{root}/input/config/hyperparameters.json: expected a JSON object of name -> value"
    )


# -- publishing into /opt/ml/model -----------------------------------------------------------

LABELS = LabelMap.from_categories({1: "bolt", 2: "nut"})
NESTED = {"weights.bin": b"w" * 64, "saved_model/saved_model.pb": b"pb", "saved_model/x/y": b"y"}


class _NestedModel:
    """Just what write_artifact asks of a detector; its files include a folder, as a
    TensorFlow SavedModel does."""

    engine = family = "fake"
    model_id = "fake-model"
    label_map = LABELS
    image_size = 64

    def architecture(self) -> dict:
        return {}

    def export(self, directory: Path) -> list[str]:
        for name, data in NESTED.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)
        return list(NESTED)


@pytest.fixture
def artifact_dir(tmp_path) -> Path:
    return write_artifact(_NestedModel(), tmp_path / "run")  # type: ignore[arg-type]


def test_publish_copies_the_artifact_with_its_folders(artifact_dir, tmp_path):
    model_dir = tmp_path / "ml" / "model"
    (model_dir / f"{STAGING_PREFIX}killed").mkdir(parents=True)  # a killed job's leftover
    publish_artifact(artifact_dir, model_dir)
    assert load_artifact(model_dir).label_map == LABELS
    names = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert names == {
        *json.loads((artifact_dir / MANIFEST_FILE).read_text())["files"],
        MANIFEST_FILE,
    }
    assert "model.tar.gz" not in names


def test_a_failed_publish_leaves_no_half_written_artifact(artifact_dir, tmp_path, monkeypatch):
    model_dir = tmp_path / "ml" / "model"
    moves = []

    def failing_move(staging, target):
        if moves:
            raise OSError(28, "No space left on device", str(target))
        moves.append(target)
        real_move(staging, target)

    real_move = publish.move_into_place
    monkeypatch.setattr(publish, "move_into_place", failing_move)
    with pytest.raises(OSError):
        publish_artifact(artifact_dir, model_dir)
    assert moves  # one entry had moved in before the failure
    assert list(model_dir.iterdir()) == []  # it is gone again, and so is the staging folder

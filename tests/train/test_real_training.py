"""The trainer with the real torch engine: tiny images and few steps, so each test is quick.

Covers what the fakes cannot: a real ``boxtune train`` process killed with SIGKILL and resumed,
incremental training from a real artifact, and determinism with a fixed seed on CPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tests.train.train_processes import start_and_kill_when, train_cli

from boxtune.artifacts import load_artifact
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.errors import TrainingError
from boxtune.train import train

TINY_HP = {"image_size": 64, "batch_size": 8, "augmentation": "False", "num_workers": 0}
EPOCH_LINE = re.compile(r"^\[Epoch (\d+)\], Speed: [0-9.]+ samples/sec, loss=([0-9.]+)\.$")


def _hp_args(hp: dict) -> list[str]:
    return [item for name, value in hp.items() for item in ("--hp", f"{name}={value}")]


def _tensors(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path))


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory, tiny_dataset) -> Path:
    output = tmp_path_factory.mktemp("tiny-model") / "out"
    train(
        DEFAULT_MODEL_ID,
        tiny_dataset,
        None,
        output,
        {**TINY_HP, "epochs": 1},
        log=lambda line: None,
        progress=False,
    )
    return output


def test_sigkill_then_resume_finishes_the_run(tiny_dataset, tmp_path):
    output = tmp_path / "out"
    args = [
        "--model-id",
        DEFAULT_MODEL_ID,
        "--training",
        str(tiny_dataset),
        "--output",
        str(output),
        "--quiet",
        *_hp_args({**TINY_HP, "epochs": 2}),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    checkpoint = output / "checkpoints" / "last.pt"
    start_and_kill_when(args, env, checkpoint.exists, timeout_s=240, what="checkpoint")
    assert not (output / "boxtune-model.json").exists()

    resumed = subprocess.run(
        train_cli(*args, "--resume"), capture_output=True, text=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    match = re.search(r"resuming from .*last\.pt at epoch (\d+)", resumed.stdout)
    assert match, resumed.stdout
    start = int(match.group(1))
    assert start == 1  # the kill came after the first checkpoint, before the end
    epochs_run = [
        int(m.group(1)) for line in resumed.stdout.splitlines() if (m := EPOCH_LINE.match(line))
    ]
    assert epochs_run == [1]  # continues; repeats no finished epoch

    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    artifact = load_artifact(output)  # complete: every hash verified
    assert {"weights.safetensors", "model.onnx", "labels_info.json", "metrics.json"} <= set(
        artifact.files
    )
    assert artifact.metrics["epochs_completed"] == 2
    assert (output / "model.tar.gz").is_file()
    load_artifact(output / "model.tar.gz")


def test_incremental_training_from_a_real_artifact(tiny_artifact, tiny_dataset, tmp_path):
    lines: list[str] = []
    result = train(
        None,
        tiny_dataset,
        None,
        tmp_path / "next",
        {**TINY_HP, "epochs": 1},
        artifact=tiny_artifact,
        log=lines.append,
        progress=False,
    )
    assert result.metrics["base_artifact"] == str(tiny_artifact)
    first = load_artifact(tiny_artifact)
    second = load_artifact(tmp_path / "next")
    assert second.label_map == first.label_map and second.model_id == first.model_id
    # It trained: the weights moved away from the starting artifact's.
    before = _tensors(tiny_artifact / "weights.safetensors")
    after = _tensors(tmp_path / "next" / "weights.safetensors")
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_incremental_training_with_other_classes_is_a_clear_error(
    tiny_artifact, renamed_classes_dataset, tmp_path
):
    with pytest.raises(TrainingError) as info:
        train(
            None,
            renamed_classes_dataset,
            None,
            tmp_path / "next",
            {**TINY_HP, "epochs": 1},
            artifact=tiny_artifact,
            log=lambda line: None,
            progress=False,
        )
    text = str(info.value)
    assert "class set" in text and "only in the data: ['4:hexagon']" in text
    assert str(tiny_artifact) in text and "hint:" in text


def test_a_fixed_seed_repeats_on_cpu(tiny_artifact, tiny_dataset, tmp_path):
    train(
        DEFAULT_MODEL_ID,
        tiny_dataset,
        None,
        tmp_path / "again",
        {**TINY_HP, "epochs": 1},
        log=lambda line: None,
        progress=False,
    )
    first = json.loads((tiny_artifact / "history.json").read_text())
    again = json.loads((tmp_path / "again" / "history.json").read_text())
    assert [r["loss"] for r in again] == [r["loss"] for r in first]
    assert again[0]["val_map50"] == first[0]["val_map50"]
    # Tensors, not file bytes: safetensors writes its metadata dict in a random order.
    again_weights = _tensors(tmp_path / "again" / "weights.safetensors")
    first_weights = _tensors(tiny_artifact / "weights.safetensors")
    assert again_weights.keys() == first_weights.keys()
    assert all(np.array_equal(again_weights[k], first_weights[k]) for k in first_weights)


CLASS_PREDICTOR = "head.class_tower.predict_pw."  # what reinitialize_top_layer replaces


@pytest.mark.parametrize(
    ("value", "keeps_head"), [("Auto", True), ("False", True), ("True", False)]
)
def test_reinitialize_top_layer_on_a_real_artifact(tiny_artifact, tiny_dataset, value, keeps_head):
    """Incremental training with the real torch engine: Auto and False start from the
    artifact's class head bit for bit, True from a new random one; the rest is the artifact's
    either way."""
    from boxtune.train.hyperparameters import parse_hyperparameters
    from boxtune.train.model_setup import build_detector, resolve_model

    setup = resolve_model(None, tiny_artifact)
    hp = parse_hyperparameters(setup.model_id, {**TINY_HP, "reinitialize_top_layer": value})
    lines: list[str] = []
    detector = build_detector(setup, setup.artifact.label_map, hp, log=lines.append)
    stored = _tensors(tiny_artifact / "weights.safetensors")
    built = {k: v.detach().numpy() for k, v in detector.net.state_dict().items()}
    head = [k for k in stored if k.startswith(CLASS_PREDICTOR)]
    assert head and stored.keys() == built.keys()
    assert all(np.array_equal(stored[k], built[k]) for k in stored if k not in head)
    assert all(np.array_equal(stored[k], built[k]) for k in head) is keeps_head
    assert any("starts again from random" in line for line in lines) is not keeps_head


def test_reinitialize_top_layer_false_on_a_catalog_model_is_refused_by_name(tiny_dataset, tmp_path):
    """The default model's pretrained weights cover the backbone only: there is no class head
    to keep, and the run says so instead of silently training a new one."""
    from boxtune.errors import ModelError

    with pytest.raises(ModelError) as info:
        train(
            DEFAULT_MODEL_ID,
            tiny_dataset,
            None,
            tmp_path / "out",
            {**TINY_HP, "epochs": 1, "reinitialize_top_layer": "False"},
            log=lambda line: None,
            progress=False,
        )
    text = str(info.value)
    assert "reinitialize_top_layer" in text and "backbone only" in text
    assert "reinitialize_top_layer=Auto" in text

"""`boxtune train` argument handling (the training itself is covered by the other tests)."""

from __future__ import annotations

import sys

import pytest

import boxtune.train
from boxtune.cli import main
from boxtune.commands.train import parse_assignments
from boxtune.errors import HyperparameterError


def test_hp_assignments():
    assert parse_assignments(["epochs=3", "learning_rate = 0.01", "augmentation=a=b"]) == {
        "epochs": "3",
        "learning_rate": "0.01",
        "augmentation": "a=b",
    }
    with pytest.raises(HyperparameterError, match="'epochs'"):
        parse_assignments(["epochs"])


def test_train_passes_arguments_and_reports_the_output(monkeypatch, capsys, tmp_path):
    calls = []

    class Result:
        output = str(tmp_path / "out")

    def fake_train(model_id, **kwargs):
        calls.append((model_id, kwargs))
        return Result()

    monkeypatch.setattr(boxtune.train, "train", fake_train)
    code = main(
        [
            "train",
            "--model-id",
            "m",
            "--training",
            "d",
            "--output",
            str(tmp_path / "out"),
            "--hp",
            "epochs=2",
            "--hp",
            "train_only_on_top_layer=True",
            "--resume",
        ]
    )
    assert code == 0
    model_id, kwargs = calls[0]
    assert model_id == "m" and kwargs["hyperparameters"] == {
        "epochs": "2",
        "train_only_on_top_layer": "True",
    }
    assert kwargs["resume"] is True and kwargs["artifact"] is None
    assert "model written to" in capsys.readouterr().err


def test_ctrl_c_prints_the_resume_command(monkeypatch, capsys):
    def interrupted(model_id, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(boxtune.train, "train", interrupted)
    argv = ["train", "--model-id", "m", "--training", "my data", "--output", "out"]
    monkeypatch.setattr(sys, "argv", ["boxtune", *argv])
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "boxtune train --model-id m --training 'my data' --output out --resume" in err


def test_a_model_is_required(capsys):
    assert main(["train", "--training", "d", "--output", "o"]) == 1
    assert "--model-id" in capsys.readouterr().err

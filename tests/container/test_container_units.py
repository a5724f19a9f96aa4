"""The container contract's small parts: the root, the job's configuration files, the hosting
settings and their precedence, the entrypoint's words, the image's ENTRYPOINT."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import import_module
from pathlib import Path

import pytest

from boxtune.cli import build_parser
from boxtune.container import entrypoint
from boxtune.container.job_config import read_hyperparameters, read_input_data_config
from boxtune.container.layout import MLLayout
from boxtune.container.serve import hosting_settings
from boxtune.errors import BoxtuneError, DatasetError, ModelError

REPO = Path(__file__).resolve().parents[2]


def test_root_from_option_environment_or_default(tmp_path, monkeypatch):
    assert MLLayout.resolve().root == Path("/opt/ml")
    monkeypatch.setenv("BOXTUNE_ML_ROOT", str(tmp_path / "env"))
    assert MLLayout.resolve().model_dir == tmp_path / "env" / "model"
    layout = MLLayout.resolve(tmp_path / "opt")
    assert layout.hyperparameters_file == tmp_path / "opt/input/config/hyperparameters.json"
    assert layout.channel("training") == tmp_path / "opt/input/data/training"
    assert layout.failure_file == tmp_path / "opt/output/failure"
    assert layout.output_data_dir == tmp_path / "opt/output/data"


def test_hyperparameters_as_the_platform_writes_them(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(
        json.dumps(
            {
                "epochs": "5",
                "optimizer": '"sgd"',  # a framework estimator's JSON-encoded string
                "train_only_top_layer": "true",
                "model_id": "pytorch-od1-ssd300-vgg16",
                "sagemaker_program": '"train.py"',
                "_tuning_objective_metric": "Val_mAP",
                "batch_size": 4,  # a hand-written number
            }
        )
    )
    hp = read_hyperparameters(path)
    assert hp.values == {
        "epochs": "5",
        "optimizer": "sgd",
        "train_only_top_layer": "true",
        "batch_size": 4,
    }
    assert hp.model_id == "pytorch-od1-ssd300-vgg16"
    assert hp.ignored == ("sagemaker_program", "_tuning_objective_metric")
    assert read_hyperparameters(tmp_path / "absent.json").values == {}


def test_input_data_config_modes(tmp_path):
    path = tmp_path / "inputdataconfig.json"
    path.write_text(json.dumps({"training": {"ContentType": "image/jpeg"}, "model": {}}))
    channels = read_input_data_config(path)
    assert channels is not None and set(channels) == {"training", "model"}
    assert channels["training"].input_mode == "File"  # what local mode leaves out
    path.write_text(json.dumps({"training": {"TrainingInputMode": "FastFile"}}))
    assert read_input_data_config(path)["training"].input_mode == "FastFile"
    path.write_text(json.dumps(["training"]))
    with pytest.raises(DatasetError, match="expected a JSON object of channel name"):
        read_input_data_config(path)
    assert read_input_data_config(tmp_path / "absent.json") is None


@pytest.fixture
def model_root(tmp_path) -> MLLayout:
    layout = MLLayout.resolve(tmp_path / "ml")
    layout.model_dir.mkdir(parents=True)
    (layout.model_dir / "boxtune-model.json").write_text("{}")
    return layout


def test_hosting_settings_precedence(model_root):
    defaults = hosting_settings(model_root, environ={})
    assert (defaults.model, defaults.host, defaults.port, defaults.workers) == (
        str(model_root.model_dir),
        "0.0.0.0",
        8080,
        1,
    )
    assert defaults.request_timeout_s == 60
    environ = {
        "SAGEMAKER_BIND_TO_PORT": "9001",
        "BOXTUNE_PORT": "9002",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "BOXTUNE_WORKERS": "4",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "12.5",
        "BOXTUNE_HOST": "127.0.0.1",
    }
    platform = hosting_settings(model_root, environ=environ)
    assert (platform.port, platform.workers, platform.host) == (9001, 3, "127.0.0.1")
    assert platform.request_timeout_s == 12.5
    boxtune_only = hosting_settings(model_root, environ={"BOXTUNE_PORT": "9002"})
    assert boxtune_only.port == 9002
    given = hosting_settings(model_root, port=7000, workers=2, model="m", environ=environ)
    assert (given.port, given.workers, given.model) == (7000, 2, "m")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGEMAKER_BIND_TO_PORT", "http"),
        ("SAGEMAKER_BIND_TO_PORT", "70000"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "-1"),
    ],
)
def test_bad_platform_variables_are_named(model_root, name, value):
    with pytest.raises(BoxtuneError) as caught:
        hosting_settings(model_root, environ={name: value})
    assert caught.value.where == name and repr(value) in caught.value.message


def test_an_empty_model_folder_is_explained(tmp_path):
    layout = MLLayout.resolve(tmp_path / "ml")
    with pytest.raises(ModelError, match="no model to serve: the folder is missing"):
        hosting_settings(layout, environ={})
    layout.model_dir.mkdir(parents=True)
    with pytest.raises(ModelError, match="the folder is empty") as caught:
        hosting_settings(layout, environ={})
    assert caught.value.where == str(layout.model_dir)
    assert hosting_settings(layout, environ={"BOXTUNE_MODEL": "s3://b/m"}).model == "s3://b/m"


def test_serve_takes_every_boxtune_serve_option(model_root, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9001")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    args = build_parser().parse_args(
        ["container", "serve", "--root", str(model_root.root), "--workers", "2"]
    )
    # Not given: left for the platform's variables (boxtune serve's own defaults are not used)
    assert (args.model, args.host, args.port, args.request_timeout_s) == (None,) * 4
    assert args.workers == 2
    served = {}
    monkeypatch.setattr(
        import_module("boxtune.serve.server"), "run_server", lambda c: served.setdefault("c", c)
    )
    args.handler(args)
    config = served["c"]
    assert (config.port, config.workers) == (9001, 2)  # an option given wins over the variable
    assert config.model == str(model_root.model_dir) and config.host == "0.0.0.0"
    assert config.max_batch_size == 8  # boxtune serve's own defaults stay


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train"], ["container", "train"]),
        (["serve", "--workers", "2"], ["container", "serve", "--workers", "2"]),
        (["models", "list"], ["models", "list"]),
        (["boxtune", "train", "--help"], ["train", "--help"]),
        ([], []),
    ],
)
def test_entrypoint_words(monkeypatch, argv, expected):
    seen = []
    monkeypatch.setattr("boxtune.cli.main", lambda args: seen.append(args) or 0)
    assert entrypoint.main(argv) == 0
    assert seen == [expected]


def test_the_image_runs_the_entrypoint_script():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["boxtune-container"].partition(":")
    assert getattr(import_module(module), function) is entrypoint.main
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = dict(re.findall(r"^(ENTRYPOINT|CMD) (.+)$", dockerfile, flags=re.M))
    assert json.loads(instructions["ENTRYPOINT"]) == ["boxtune-container"]
    assert json.loads(instructions["CMD"]) == ["serve"]
    # A BOXTUNE_MODEL in the image would win over ROOT/model, where the platform puts the model
    code = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "BOXTUNE_MODEL=" in line]

"""Hyperparameters: names, types, ranges, defaults, spellings and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec, list_specs
from boxtune.errors import HyperparameterError, ModelError
from boxtune.train.hyperparameters import (
    OPTIONS,
    describe_options,
    parse_hyperparameters,
    retrieve_default,
)

# The managed algorithm's table (reference contract): name -> table default.
REFERENCE_DEFAULTS = {
    "batch_size": "3",
    "epochs": "5",
    "learning_rate": "0.001",
    "optimizer": "adam",
    "momentum": "0.9",
    "beta_1": "0.9",
    "beta_2": "0.999",
    "epsilon": "1e-07",
    "rho": "0.95",
    "initial_accumulator_value": "0.1",
    "early_stopping": "False",
    "early_stopping_min_delta": "0.0",
    "early_stopping_patience": "5",
    "reinitialize_top_layer": "Auto",
    "train_only_top_layer": "False",
}


def test_reference_table_defaults_without_a_model():
    defaults = retrieve_default(None)
    for name, value in REFERENCE_DEFAULTS.items():
        assert defaults[name] == value, name
    assert defaults["validation_split_ratio"] == "0.2"
    assert defaults["seed"] == "0"
    assert all(isinstance(v, str) for v in defaults.values())


def test_every_reference_name_is_marked_reference():
    assert {n for n, o in OPTIONS.items() if o.reference} == set(REFERENCE_DEFAULTS)


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.model_id)
def test_catalog_defaults_are_valid_and_strings(spec):
    defaults = retrieve_default(spec.model_id)
    assert all(isinstance(v, str) for v in defaults.values())
    assert defaults["image_size"] == str(spec.image_size)
    for name, value in spec.default_hyperparameters.items():
        canonical = "train_only_top_layer" if name == "train_only_on_top_layer" else name
        parsed = parse_hyperparameters(spec.model_id).get(canonical)
        assert str(parsed).lower() == str(value).lower() or float(parsed) == float(value)


def test_model_defaults_override_the_table():
    spec = get_spec(DEFAULT_MODEL_ID)
    defaults = retrieve_default(DEFAULT_MODEL_ID, "*")
    assert defaults["batch_size"] == spec.default_hyperparameters["batch_size"]


def test_large_models_train_only_the_head_by_default():
    large = [s for s in list_specs() if s.default_hyperparameters.get("epochs") == "1"]
    assert large, "the catalog should hold large models with 1 default epoch"
    for spec in large:
        assert parse_hyperparameters(spec.model_id).train_only_top_layer is True


def test_strings_and_native_values_give_the_same_result():
    as_strings = parse_hyperparameters(
        None,
        {"epochs": "7", "learning_rate": "0.0005", "early_stopping": "True", "batch_size": "4"},
    )
    as_natives = parse_hyperparameters(
        None, {"epochs": 7, "learning_rate": 5e-4, "early_stopping": True, "batch_size": 4.0}
    )
    assert as_strings == as_natives
    assert as_strings.epochs == 7 and isinstance(as_strings.epochs, int)
    assert as_strings.early_stopping is True


@pytest.mark.parametrize("text", ["True", "true", "TRUE", True])
def test_boolean_spellings(text):
    assert parse_hyperparameters(None, {"early_stopping": text}).early_stopping is True


@pytest.mark.parametrize("name", ["train_only_top_layer", "train_only_on_top_layer"])
def test_both_spellings_of_train_only_top_layer(name):
    hp = parse_hyperparameters(None, {name: "True"})
    assert hp.train_only_top_layer is True
    assert hp.train_only_on_top_layer is True
    assert hp.to_strings()["train_only_top_layer"] == "True"


def test_conflicting_spellings_are_an_error():
    with pytest.raises(HyperparameterError, match="conflicts"):
        parse_hyperparameters(
            None, {"train_only_top_layer": "True", "train_only_on_top_layer": "False"}
        )


def test_reinitialize_top_layer_values():
    for value, expected in [("auto", "Auto"), ("True", "True"), (False, "False")]:
        assert (
            parse_hyperparameters(None, {"reinitialize_top_layer": value}).get(
                "reinitialize_top_layer"
            )
            == expected
        )
    with pytest.raises(HyperparameterError, match="Auto, True, False"):
        parse_hyperparameters(None, {"reinitialize_top_layer": "sometimes"})


def test_one_error_lists_every_offending_value():
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(
            DEFAULT_MODEL_ID,
            {
                "lerning_rate": "0.1",
                "batch_size": "0",
                "epochs": "many",
                "optimizer": "adamw",
                "momentum": "1.5",
                "early_stopping": "yes",
                "validation_split_ratio": "1",
            },
        )
    text = str(info.value)
    assert "7 invalid hyperparameters" in text
    assert "lerning_rate='0.1': unknown name (did you mean learning_rate?)" in text
    assert "batch_size='0': out of range; allowed: an integer >= 1" in text
    assert "epochs='many': not an integer" in text
    assert "optimizer='adamw'" in text and "adam, sgd, nesterov, rmsprop, adagrad, adadelta" in text
    assert "momentum='1.5': out of range; allowed: a number in [0, 1]" in text
    assert "early_stopping='yes'" in text and '"True" or "False"' in text
    assert "validation_split_ratio='1'" in text and "(0, 0.9]" in text
    assert "hint:" in text


def test_the_users_spelling_is_named_in_errors():
    with pytest.raises(HyperparameterError, match="train_only_on_top_layer='maybe'"):
        parse_hyperparameters(None, {"train_only_on_top_layer": "maybe"})


@pytest.mark.parametrize(
    "name,value",
    [
        ("learning_rate", "-0.1"),
        ("learning_rate", "1.01"),
        ("learning_rate", "nan"),
        ("early_stopping_patience", "0"),
        ("epsilon", "2"),
        ("batch_size", "2.5"),
        ("batch_size", True),
        ("num_workers", "-1"),
        ("device", "tpu"),
        ("seed", "-3"),
        ("gradient_clip_norm", "-1"),
        ("score_threshold", "1.5"),
        ("lr_schedule", "linear"),
        ("early_stopping_metric", "accuracy"),
    ],
)
def test_out_of_range_values(name, value):
    with pytest.raises(HyperparameterError, match=name):
        parse_hyperparameters(None, {name: value})


def test_boundaries_are_inclusive_where_the_table_says_so():
    hp = parse_hyperparameters(
        None, {"learning_rate": "0", "momentum": "1", "early_stopping_min_delta": "1"}
    )
    assert hp.learning_rate == 0.0 and hp.momentum == 1.0


def test_extras():
    hp = parse_hyperparameters(
        None,
        {
            "validation_split_ratio": "0.3",
            "image_size": "384",
            "seed": "42",
            "augmentation": "false",
            "num_workers": "2",
            "device": "CPU",
            "score_threshold": "0.25",
            "warmup_epochs": "0.5",
            "warmup_steps": "10",
            "gradient_clip_norm": "0",
            "max_runtime_seconds": "60",
        },
    )
    assert hp.validation_split_ratio == 0.3 and hp.image_size == 384 and hp.seed == 42
    assert hp.augmentation == "False" and hp.num_workers == 2 and hp.device == "cpu"
    assert hp.score_threshold == 0.25 and hp.warmup_epochs == 0.5 and hp.warmup_steps == 10
    assert hp.gradient_clip_norm == 0.0 and hp.max_runtime_seconds == 60.0


def test_num_workers_auto_resolves_to_a_count():
    hp = parse_hyperparameters(None, {"num_workers": "auto"})
    assert hp.num_workers is None
    assert hp.to_strings()["num_workers"] == "auto"
    assert hp.resolved_num_workers() >= 0


def test_options_of_other_optimizers_are_reported_as_ignored():
    hp = parse_hyperparameters(None, {"optimizer": "adam", "momentum": "0.5", "beta_1": "0.8"})
    assert hp.ignored_options() == ["momentum"]
    (note,) = hp.notes()
    assert "momentum=0.5 is ignored by optimizer adam" in note and "sgd, nesterov" in note
    # Defaults are never reported: only what the user set.
    assert parse_hyperparameters(None, {"optimizer": "sgd"}).notes() == []
    assert parse_hyperparameters(
        None, {"optimizer": "adagrad", "rho": "0.9"}
    ).ignored_options() == ["rho"]


def test_round_trip_through_strings():
    hp = parse_hyperparameters(DEFAULT_MODEL_ID, {"learning_rate": 3e-4, "epochs": 2})
    again = parse_hyperparameters(DEFAULT_MODEL_ID, hp.to_strings())
    assert again == hp


def test_unknown_model_and_version():
    with pytest.raises(ModelError):
        retrieve_default("pytorch-od1-no-such-model")
    with pytest.raises(ModelError, match="version"):
        retrieve_default(DEFAULT_MODEL_ID, model_version="9.9.9")


def test_describe_lists_every_option():
    rows = describe_options()
    assert [r["name"] for r in rows] == list(OPTIONS)
    momentum = next(r for r in rows if r["name"] == "momentum")
    assert momentum["optimizers"] == "sgd, nesterov"


def test_cli_prints_the_defaults_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "boxtune.cli", "hyperparameters", DEFAULT_MODEL_ID],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(result.stdout)
    assert printed == retrieve_default(DEFAULT_MODEL_ID)
    assert all(isinstance(v, str) for v in printed.values())


def test_cli_unknown_model_fails_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "boxtune.cli", "hyperparameters", "no-such-model"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr

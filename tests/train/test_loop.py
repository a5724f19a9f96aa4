"""The training loop's behaviour, driven through a scripted Detector (see tests/fake_engine.py)."""

from __future__ import annotations

import json
import math
import re

import pytest
from tests.fake_engine import FAKE_WEIGHTS, FakeEngine, install

from boxtune.artifacts import load_artifact
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.data import read_dataset, split_dataset
from boxtune.errors import DatasetError, TrainingError
from boxtune.train import train

BASE_HP = {
    "image_size": 64,
    "batch_size": 4,
    "epochs": 3,
    "augmentation": "False",
    "num_workers": 0,
}
LOSS = re.compile(r"loss=([0-9\.]+).")
VAL_LOC = re.compile(r"Val_localization=([0-9\.]+)")
VAL_CLS = re.compile(r"Val_classification=([0-9\.]+)")


def steps_per_epoch(dataset) -> int:
    train_part, _ = split_dataset(read_dataset(dataset), 0.2, 0)
    return math.ceil(len(train_part) / BASE_HP["batch_size"])


def run(monkeypatch, dataset, output, engine=None, hp=None, **kwargs):
    engine = install(monkeypatch, engine or FakeEngine())
    lines: list[str] = []
    result = train(
        kwargs.pop("model_id", DEFAULT_MODEL_ID),
        dataset,
        kwargs.pop("validation", None),
        output,
        {**BASE_HP, **(hp or {})},
        log=lines.append,
        progress=False,
        **kwargs,
    )
    return engine, result, lines


def exported_weights(directory) -> float:
    return json.loads((directory / FAKE_WEIGHTS).read_text())["weights"]


def test_a_run_writes_a_complete_artifact_metrics_and_log_lines(
    monkeypatch, sample_dataset, tmp_path
):
    # The fake's validation loss falls every epoch, so the last epoch is the best on "loss".
    engine, result, lines = run(
        monkeypatch, sample_dataset, tmp_path / "out", hp={"early_stopping_metric": "loss"}
    )
    spe = steps_per_epoch(sample_dataset)

    artifact = load_artifact(tmp_path / "out")  # verifies every file's sha256
    assert artifact.model_id == DEFAULT_MODEL_ID
    assert artifact.label_map == read_dataset(sample_dataset).label_map
    assert (tmp_path / "out" / "model.tar.gz").is_file()
    assert artifact.hyperparameters["epochs"] == "3"
    assert exported_weights(tmp_path / "out") == 3 * spe  # the best (last, improving) epoch

    records = [
        json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().split("\n") if x
    ]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert all(r["val_map50"] is not None and r["peak_rss_mb"] > 0 for r in records)
    assert result.metrics["validation"]["map50"] == records[-1]["val_map50"]
    assert result.metrics["best_epoch"] == 2 and "warning" not in result.metrics

    # The reference's regexes find one training loss and one pair of validation losses an epoch.
    text = "\n".join(lines)
    losses = [float(m.rstrip(".")) for m in LOSS.findall(text)]
    assert losses == pytest.approx([r["loss"] for r in records], abs=1e-4)
    assert [float(v) for v in VAL_LOC.findall(text)] == pytest.approx(
        [r["val_localization"] for r in records], abs=1e-4
    )
    assert len(VAL_CLS.findall(text)) == 3
    assert sum("Val_mAP=" in line and "Val_mAP50=" in line for line in lines) == 3
    for epoch in range(3):
        assert any(
            re.fullmatch(
                rf"\[Epoch {epoch}\], Speed: [0-9.]+ samples/sec, "
                r"loss=[0-9.]+\.",
                line,
            )
            for line in lines
        )

    # The engine saw what the reference promises: a pretrained model with a new head.
    call = engine.create_calls[0]
    assert call == {
        "init": "pretrained",
        "reinitialize_head": True,
        "device": "cpu",
        "image_size": 64,
    }
    assert engine.seeds == [0]
    rates = engine.created[0].learning_rates
    assert rates[0] < rates[spe - 1] and rates[-1] < max(rates)  # warm-up, then decay


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({}, False),
        ({"train_only_top_layer": "True"}, True),
        ({"train_only_on_top_layer": True}, True),
    ],
)
def test_train_only_top_layer_reaches_set_trainable(
    monkeypatch, sample_dataset, tmp_path, overrides, expected
):
    engine, _, _ = run(monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 1, **overrides})
    assert engine.created[0].head_only is expected


def test_reinitialize_top_layer_false_keeps_the_pretrained_head(
    monkeypatch, sample_dataset, tmp_path
):
    engine, _, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "out",
        hp={"epochs": 1, "reinitialize_top_layer": "False"},
    )
    assert engine.create_calls[0]["reinitialize_head"] is False


def _loss_by_epoch(spe: int, values: list[float]):
    return lambda steps: values[max(0, steps // spe - 1)]


def test_early_stopping_stops_and_exports_the_best_epoch(monkeypatch, sample_dataset, tmp_path):
    spe = steps_per_epoch(sample_dataset)
    engine = FakeEngine(val_loss=_loss_by_epoch(spe, [1.0, 0.5, 0.6, 0.7, 0.3, 0.2, 0.1]))
    _, result, lines = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "out",
        engine,
        hp={
            "epochs": 7,
            "early_stopping": "True",
            "early_stopping_patience": 2,
            "early_stopping_metric": "loss",
        },
    )
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]
    assert result.metrics["stop_reason"] == "early_stopping"
    assert result.metrics["best_epoch"] == 1
    assert exported_weights(tmp_path / "out") == 2 * spe  # the model after epoch 1
    assert any(line.startswith("early stopping:") for line in lines)


def test_min_delta_decides_what_counts_as_an_improvement(monkeypatch, sample_dataset, tmp_path):
    spe = steps_per_epoch(sample_dataset)
    engine = FakeEngine(val_loss=_loss_by_epoch(spe, [1.0, 0.95, 0.9, 0.85, 0.8]))
    _, result, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "out",
        engine,
        hp={
            "epochs": 5,
            "early_stopping": "True",
            "early_stopping_patience": 2,
            "early_stopping_metric": "loss",
            "early_stopping_min_delta": "0.1",
        },
    )
    assert result.metrics["stop_reason"] == "early_stopping"
    assert result.metrics["best_epoch"] == 0 and len(result.history) == 3


def test_without_early_stopping_the_best_epoch_is_still_exported(
    monkeypatch, sample_dataset, tmp_path
):
    spe = steps_per_epoch(sample_dataset)
    engine = FakeEngine(val_loss=_loss_by_epoch(spe, [1.0, 0.5, 0.6, 0.7]))
    _, result, lines = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "out",
        engine,
        hp={"epochs": 4, "early_stopping_metric": "loss"},
    )
    assert len(result.history) == 4 and result.metrics["stop_reason"] == "completed"
    assert exported_weights(tmp_path / "out") == 2 * spe
    assert "exporting the best epoch, 1 (validation loss)" in lines


@pytest.mark.parametrize(
    "bad_loss,expected",
    [
        (float("nan"), "the loss is nan"),
        (float("inf"), "the loss is inf"),
        (1e6, "exploded to 1e+06"),
    ],
)
def test_a_divergent_run_stops_at_once(monkeypatch, sample_dataset, tmp_path, bad_loss, expected):
    spe = steps_per_epoch(sample_dataset)
    bad_step = 2 * spe + 1  # epoch 2, step 1
    engine = FakeEngine(train_loss=lambda step: bad_loss if step == bad_step else 1.0)
    with pytest.raises(TrainingError) as info:
        run(monkeypatch, sample_dataset, tmp_path / "out", engine, hp={"epochs": 5})
    text = str(info.value)
    assert expected in text and "epoch 2, step 1" in text
    assert "learning_rate" in text and "optimizer" in text
    assert engine.created[0].steps == bad_step + 1  # stopped at once
    assert not (tmp_path / "out" / "boxtune-model.json").exists()


@pytest.mark.parametrize(
    "predict,expected",
    [("empty", "predicts no boxes at all"), ("weak", "every validation prediction scores below")],
)
def test_a_model_that_detects_nothing_is_flagged(
    monkeypatch, sample_dataset, tmp_path, predict, expected
):
    _, result, lines = run(
        monkeypatch, sample_dataset, tmp_path / "out", FakeEngine(predict=predict), hp={"epochs": 1}
    )
    assert expected in result.metrics["warning"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert expected in saved["warning"]
    assert sum(line.startswith("WARNING:") for line in lines) >= 2  # per epoch and at the end
    assert result.warnings


def test_an_existing_run_is_not_overwritten(monkeypatch, sample_dataset, tmp_path):
    run(monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 1})
    with pytest.raises(TrainingError, match="already holds a training run"):
        run(monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 1})


def test_interrupt_then_resume_trains_the_same_batches(monkeypatch, sample_dataset, tmp_path):
    spe = steps_per_epoch(sample_dataset)
    hp = {"epochs": 3, "augmentation": "True", "early_stopping_metric": "loss"}
    reference, _, _ = run(monkeypatch, sample_dataset, tmp_path / "straight", hp=hp)

    first = FakeEngine(interrupt_at_step=spe + 1)
    with pytest.raises(KeyboardInterrupt):
        run(monkeypatch, sample_dataset, tmp_path / "out", first, hp=hp)
    assert (tmp_path / "out" / "checkpoints" / "last").is_dir()  # the fake names it so

    second, result, lines = run(monkeypatch, sample_dataset, tmp_path / "out", hp=hp, resume=True)
    assert any("resuming from" in line and "epoch 1, step 1" in line for line in lines)
    batches = first.created[0].batches + second.created[0].batches
    assert batches == reference.created[0].batches
    assert second.created[0].optimizer_state == {"updates": 3 * spe}  # optimizer state restored
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    assert exported_weights(tmp_path / "out") == 3 * spe


def test_resume_with_more_epochs_continues(monkeypatch, sample_dataset, tmp_path):
    run(monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 1})
    _, result, lines = run(
        monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 2}, resume=True
    )
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert any("resuming with epochs=2 (the interrupted run used 1)" in line for line in lines)
    records = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in records] == [0, 1]


def test_max_runtime_seconds_ends_the_run_with_a_model(monkeypatch, sample_dataset, tmp_path):
    _, result, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "out",
        hp={"epochs": 50, "max_runtime_seconds": "0.001"},
    )
    assert result.metrics["stop_reason"] == "max_runtime_seconds"
    assert len(result.history) == 1 and result.history[0]["steps"] == 1
    load_artifact(tmp_path / "out")


def test_same_seed_same_batches_other_seed_other_batches(monkeypatch, sample_dataset, tmp_path):
    hp = {"epochs": 2, "augmentation": "True"}
    a, _, _ = run(monkeypatch, sample_dataset, tmp_path / "a", hp=hp)
    b, _, _ = run(monkeypatch, sample_dataset, tmp_path / "b", hp=hp)
    c, _, _ = run(monkeypatch, sample_dataset, tmp_path / "c", hp={**hp, "seed": 5})
    assert a.created[0].batches == b.created[0].batches
    assert a.created[0].batches != c.created[0].batches
    assert c.seeds == [5]


def test_incremental_training_keeps_the_head_and_checks_the_classes(
    monkeypatch, sample_dataset, renamed_classes_dataset, tmp_path
):
    spe = steps_per_epoch(sample_dataset)
    run(monkeypatch, sample_dataset, tmp_path / "first", hp={"epochs": 1})

    engine, result, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "second",
        model_id=None,
        artifact=tmp_path / "first",
        hp={"epochs": 1},
    )
    assert not engine.create_calls  # loaded from the artifact, not built from the catalog
    assert engine.created[0].reinitialized is False  # Auto keeps the trained head
    assert exported_weights(tmp_path / "second") == 2 * spe  # continued from the first model
    assert result.metrics["base_artifact"] == str(tmp_path / "first")

    engine, _, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "third",
        model_id=None,
        artifact=tmp_path / "first",
        hp={"epochs": 1, "reinitialize_top_layer": "True"},
    )
    assert engine.created[0].reinitialized is True

    with pytest.raises(TrainingError) as info:
        run(
            monkeypatch,
            renamed_classes_dataset,
            tmp_path / "fourth",
            model_id=None,
            artifact=tmp_path / "first",
            hp={"epochs": 1},
        )
    text = str(info.value)
    assert "class set" in text and "4:star" in text and "4:hexagon" in text


def test_a_path_given_as_model_id_is_an_artifact(monkeypatch, sample_dataset, tmp_path):
    run(monkeypatch, sample_dataset, tmp_path / "first", hp={"epochs": 1})
    engine, _, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "second",
        model_id=str(tmp_path / "first" / "model.tar.gz"),
        hp={"epochs": 1},
    )
    assert not engine.create_calls and engine.created


def test_a_validation_channel_is_used_as_given(
    monkeypatch, sample_dataset, renamed_classes_dataset, tmp_path
):
    _, result, lines = run(
        monkeypatch, sample_dataset, tmp_path / "out", validation=sample_dataset, hp={"epochs": 1}
    )
    assert result.metrics["validation"]["source"] == "channel"
    assert result.metrics["validation"]["images"] == 12
    assert not any("holding out" in line for line in lines)


def test_validation_with_unknown_categories_is_an_error(monkeypatch, sample_dataset, tmp_path):
    other = tmp_path / "other"
    from boxtune.data import DatasetWriter

    image = (sample_dataset / "images" / "00000.jpg").read_bytes()
    with DatasetWriter(other, categories={9: "kite"}) as writer:
        writer.add_image("a.jpg", image, boxes=[((1, 1, 20, 20), 9)])
    with pytest.raises(DatasetError, match=r"\[9\]"):
        run(monkeypatch, sample_dataset, tmp_path / "out", validation=other, hp={"epochs": 1})


def test_ignored_options_are_reported(monkeypatch, sample_dataset, tmp_path):
    _, _, lines = run(
        monkeypatch, sample_dataset, tmp_path / "out", hp={"epochs": 1, "momentum": "0.5"}
    )
    assert any("momentum=0.5 is ignored by optimizer adam" in line for line in lines)


def test_training_from_and_to_s3(monkeypatch, sample_dataset, s3_bucket, s3_env, tmp_path):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    from boxtune.storage import upload

    upload(sample_dataset, f"s3://{s3_bucket}/data")
    _, result, _ = run(
        monkeypatch, f"s3://{s3_bucket}/data", f"s3://{s3_bucket}/out", hp={"epochs": 1}
    )
    assert result.output == f"s3://{s3_bucket}/out"
    keys = set(s3_env.keys(s3_bucket, "out/"))
    assert {"out/boxtune-model.json", "out/model.tar.gz", "out/metrics.jsonl"} <= keys
    artifact = load_artifact(f"s3://{s3_bucket}/out/model.tar.gz")
    assert artifact.label_map == read_dataset(sample_dataset).label_map


def test_progress_bar_with_eta_goes_to_stderr(monkeypatch, sample_dataset, tmp_path, capsys):
    install(monkeypatch, FakeEngine())
    train(
        DEFAULT_MODEL_ID,
        sample_dataset,
        None,
        tmp_path / "out",
        {**BASE_HP, "epochs": 2},
        log=print,
        progress=True,
    )
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.err and "run_eta=" in captured.err
    assert "[Epoch 1], Speed:" in captured.out and "epoch 2/2" not in captured.out


def test_incremental_training_does_not_need_the_catalog_entry(
    monkeypatch, sample_dataset, tmp_path
):
    """The artifact rebuilds the network from its own manifest; a model_id the catalog no
    longer knows trains on the reference table's defaults."""
    import boxtune.catalog.models

    run(monkeypatch, sample_dataset, tmp_path / "first", hp={"epochs": 1})
    monkeypatch.setattr(boxtune.catalog.models, "_BY_ID", {})
    engine, result, _ = run(
        monkeypatch,
        sample_dataset,
        tmp_path / "second",
        model_id=None,
        artifact=tmp_path / "first",
        hp={"epochs": 1},
    )
    assert not engine.create_calls and result.metrics["epochs_completed"] == 1

"""The SDK end to end: fit (a real background training job) -> artifact -> deploy -> predict.

Training is tiny (1 epoch, 12 images of 128 px) so the whole file takes about a minute or two
on 2 cores; every step is real (processes, HTTP, S3 protocol).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.s3_server import S3Server

import boxtune
from boxtune import jobs
from boxtune.cli import main as cli_main
from boxtune.errors import BoxtuneError, BoxtuneWarning, ModelError, TrainingError

MODEL_ID = "pytorch-od1-efficientdet-lite0-320"
TINY = {"epochs": "1", "image_size": "128", "batch_size": "4", "num_workers": "0"}


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory) -> Path:
    from boxtune.data import generate_sample_dataset

    return generate_sample_dataset(tmp_path_factory.mktemp("data") / "shapes", images=12, seed=3)


def tiny_hyperparameters() -> dict[str, str]:
    hp = boxtune.hyperparameters.retrieve_default(model_id=MODEL_ID, model_version="*")
    assert all(isinstance(v, str) for v in hp.values())
    hp.update(TINY)
    return hp


def check_answer(answer, n: int | None = None) -> None:
    parsed = json.loads(answer)  # the managed SDK's callers parse the raw bytes...
    assert answer["normalized_boxes"] == parsed["normalized_boxes"]  # ...or index it directly
    boxes, classes, scores = parsed["normalized_boxes"], parsed["classes"], parsed["scores"]
    assert len(boxes) == len(classes) == len(scores) > 0
    if n is not None:
        assert len(boxes) <= n
    assert scores == sorted(scores, reverse=True)
    for box in boxes:
        xmin, ymin, xmax, ymax = box
        assert 0.0 <= xmin <= xmax <= 1.0 and 0.0 <= ymin <= ymax <= 1.0


@pytest.mark.slow
def test_local_round_trip(sample_dataset, tmp_path, capsys):
    with pytest.warns(BoxtuneWarning, match="Estimator ignores instance_type, role"):
        estimator = boxtune.Estimator(
            model_id=MODEL_ID,
            hyperparameters=tiny_hyperparameters(),
            output_path=str(tmp_path / "out"),
            role="arn:aws:iam::000000000000:role/ignored",
            instance_type="ml.p3.2xlarge",
        )

    estimator.fit({"training": str(sample_dataset)}, logs=True, job_name="local-round-trip")
    streamed = capsys.readouterr().out
    assert "[Epoch 0], Speed:" in streamed and "loss=" in streamed  # logs=True streamed the log

    job = jobs.get_job("local-round-trip")
    assert job.status == "completed"
    assert estimator.model_data == str(tmp_path / "out/local-round-trip/output/model.tar.gz")
    assert Path(estimator.model_data).is_file()
    assert job.hyperparameters["epochs"] == "1"
    assert [m["epoch"] for m in job.metrics] == [0]
    assert "val_map" in job.metrics[0]

    attached = boxtune.Estimator.attach("local-round-trip")
    assert attached.model_data == estimator.model_data
    assert attached.model_id == MODEL_ID

    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.xlarge")
    try:
        endpoint = jobs.get_endpoint(predictor.endpoint_name)
        assert endpoint.status == "running" and endpoint.job_name == "local-round-trip"
        image = next((sample_dataset / "images").iterdir()).read_bytes()
        check_answer(predictor.predict(image, accept="application/json;n_predictions=3"), 3)
        verbose = predictor.predict(
            image,
            initial_args={
                "ContentType": "application/x-image",
                "Accept": "application/json;verbose",
            },
        )
        check_answer(verbose)
        assert verbose["labels"] == ["circle", "triangle", "square", "star"]
        # A path works as well as bytes; garbage is a clear 4xx error, not a crash.
        check_answer(predictor.predict(next((sample_dataset / "images").iterdir())))
        with pytest.raises(BoxtuneError, match="answered 4"):
            predictor.predict(b"not an image")

        assert cli_main(["endpoints", "list"]) == 0
        assert predictor.endpoint_name in capsys.readouterr().out
    finally:
        predictor.delete_endpoint()
    stopped = jobs.get_endpoint(predictor.endpoint_name)
    assert stopped.status == "stopped"
    assert not jobs.processes.is_alive(stopped.pid, stopped.pid_started)
    with pytest.raises(BoxtuneError, match="is stopped"):
        predictor.predict(b"x")

    # A model that exists already deploys without an estimator; a PIL image is a valid input.
    from PIL import Image

    model_predictor = boxtune.Model(model_data=estimator.model_data).deploy(
        endpoint_name="from-model-data"
    )
    try:
        image = Image.open(next((sample_dataset / "images").iterdir()))
        check_answer(model_predictor.predict(image))
    finally:
        model_predictor.delete_endpoint()
    assert jobs.get_endpoint("from-model-data").status == "stopped"

    # The jobs CLI over the same registry.
    assert cli_main(["jobs", "list"]) == 0
    listing = capsys.readouterr().out
    assert "local-round-trip" in listing and "completed" in listing
    assert cli_main(["jobs", "show", "local-round-trip"]) == 0
    shown = capsys.readouterr().out
    assert "metrics per epoch:" in shown and "val_map" in shown
    assert cli_main(["jobs", "show", "local-round-trip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert cli_main(["jobs", "logs", "local-round-trip"]) == 0
    assert "[Epoch 0]" in capsys.readouterr().out


def test_failed_fit_raises_with_the_reason(tmp_path):
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "annotations.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "missing.jpg", "width": 10, "height": 10}],
                "annotations": [],
            }
        )
    )
    estimator = boxtune.Estimator(
        model_id=MODEL_ID, hyperparameters=TINY, output_path=str(tmp_path / "out")
    )
    with pytest.raises(TrainingError) as info:
        estimator.fit({"training": str(broken)}, logs=False, job_name="broken-data")
    assert "training job broken-data failed" in str(info.value)
    assert "missing.jpg" in str(info.value)
    assert jobs.get_job("broken-data").status == "failed"


def test_bad_arguments_fail_before_any_job_starts(tmp_path, sample_dataset):
    with pytest.raises(ModelError, match="no-such-model"):
        boxtune.Estimator(model_id="no-such-model")
    with pytest.raises(boxtune.errors.HyperparameterError, match="epochz"):
        boxtune.Estimator(model_id=MODEL_ID, hyperparameters={"epochz": "1"}).fit(
            {"training": str(sample_dataset)}
        )
    with pytest.raises(BoxtuneError, match="does not exist"):
        boxtune.Estimator(model_id=MODEL_ID).fit({"training": str(tmp_path / "nothing")})
    with pytest.raises(BoxtuneError, match="channel"):
        boxtune.Estimator(model_id=MODEL_ID).fit({"train": str(sample_dataset)})
    with pytest.raises(BoxtuneError, match="not been fitted"):
        _ = boxtune.Estimator(model_id=MODEL_ID).model_data
    assert jobs.list_jobs() == []


def test_catalog_helpers():
    assert MODEL_ID in boxtune.list_models()
    assert boxtune.list_models(filter="deployable == false") == [MODEL_ID]
    assert MODEL_ID not in boxtune.list_models(filter="task == od and deployable == true")
    assert boxtune.list_models(filter="efficientdet-lite") == [MODEL_ID]
    weights = boxtune.model_uris.retrieve(
        model_id=MODEL_ID, model_version="*", model_scope="training"
    )
    assert Path(weights).is_file()  # the offline model's weights ship inside a package
    with pytest.raises(ModelError, match="cannot be deployed without fine-tuning"):
        boxtune.model_uris.retrieve(model_id=MODEL_ID, model_scope="inference")
    with pytest.raises(ModelError, match="cannot be deployed without fine-tuning"):
        boxtune.Model(model_id=MODEL_ID)
    url = boxtune.model_uris.retrieve(
        model_id="pytorch-od1-ssdlite320-mobilenet-v3-large", model_scope="inference"
    )
    assert url.startswith("https://")
    assert boxtune.Model(model_data=url).model_ref == "pytorch-od1-ssdlite320-mobilenet-v3-large"


def test_pretrained_model_deploy_fails_clearly_when_weights_are_missing(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")  # no download attempt, whatever the network
    model = boxtune.Model(model_id="pytorch-od1-ssdlite320-mobilenet-v3-large")
    with pytest.raises(BoxtuneError) as info:
        model.deploy(endpoint_name="coco-ssdlite")
    assert "did not start" in str(info.value)
    endpoint = jobs.get_endpoint("coco-ssdlite")
    assert endpoint.status == "failed"
    assert "ssdlite320" in endpoint.failure_reason


@pytest.mark.slow
def test_s3_round_trip_with_a_script_written_for_the_managed_sdk(
    sample_dataset, s3_env: S3Server, tmp_path
):
    """fit from S3 -> model.tar.gz in S3 -> deploy from S3 -> predict, run by an unchanged
    managed-platform script in its own process."""
    from boxtune import storage

    data_bucket = s3_env.create_bucket("training-data")
    output_bucket = s3_env.create_bucket("outputs")
    storage.upload(sample_dataset, f"s3://{data_bucket}/training-datasets/shapes")
    image = next((sample_dataset / "images").iterdir())
    env = {
        **os.environ,
        "MODEL_ID": MODEL_ID,
        "TRAINING_DATA_BUCKET": data_bucket,
        "BOXTUNE_DEFAULT_BUCKET": output_bucket,
        "IMAGE_PATH": str(image),
        "IMAGE_SIZE": "128",
    }
    script = Path(__file__).with_name("platform_script.py")
    run = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    job_name = summary["job_name"]
    assert summary["model_data"] == (
        f"s3://{output_bucket}/jumpstart-example-od-training/output/{job_name}/output/model.tar.gz"
    )
    assert "[Epoch 0]" in run.stdout  # fit(logs=True) streamed the job's log
    assert "Estimator ignores" in run.stderr

    keys = s3_env.keys(output_bucket)
    assert f"jumpstart-example-od-training/output/{job_name}/output/model.tar.gz" in keys
    assert not any("checkpoints" in key for key in keys)

    assert 0 < len(summary["normalized_boxes"]) <= 5
    assert set(summary["class_names"]) <= {"circle", "triangle", "square", "star"}
    assert summary["confidences"] == sorted(summary["confidences"], reverse=True)

    job = jobs.get_job(job_name)
    assert job.inputs["training"] == f"s3://{data_bucket}/training-datasets/shapes"
    assert job.model_id == MODEL_ID  # recovered from model_uri / image_uri alone
    endpoint = jobs.get_endpoint(summary["endpoint_name"])
    assert endpoint.model == summary["model_data"]  # served straight from S3
    assert endpoint.status == "stopped"

"""SDK pieces that need no trained model: argument handling, notices, responses, sessions."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import pytest

import boxtune
from boxtune import jobs
from boxtune.errors import BoxtuneError, BoxtuneWarning, TrainingError
from boxtune.sdk.estimator import channel_uri
from boxtune.sdk.predictor import JSONResponse

MODEL_ID = "pytorch-od1-efficientdet-lite0-320"


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    from boxtune.data import generate_sample_dataset

    return generate_sample_dataset(tmp_path / "tiny", images=3, seed=0)


def test_json_response_is_bytes_and_a_mapping():
    raw = b'{"normalized_boxes": [[0.1, 0.2, 0.3, 0.4]], "classes": [1], "scores": [0.9]}'
    response = JSONResponse(raw)
    assert json.loads(response) == json.loads(raw)  # what managed-SDK code does
    assert response["classes"] == [1]
    assert response[:1] == b"{"  # still bytes where bytes are expected
    assert "scores" in response and b"scores" in response
    assert dict(response)["scores"] == [0.9]
    assert response.get("labels", []) == []
    assert sorted(response.keys()) == ["classes", "normalized_boxes", "scores"]


def test_platform_arguments_are_ignored_with_one_notice(monkeypatch):
    from boxtune.sdk import notices

    monkeypatch.setattr(notices, "_already_said", set())  # other tests may have said it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # only boxtune's own de-duplication applies
        for _ in range(2):
            boxtune.Estimator(model_id=MODEL_ID, role="arn:role", instance_type="ml.p3.2xlarge")
    said = [w for w in caught if issubclass(w.category, BoxtuneWarning)]
    assert len(said) == 1 and len(caught) == 1
    assert str(said[0].message).startswith("Estimator ignores instance_type, role")
    assert said[0].filename == __file__  # points at the caller's line, not into boxtune
    with pytest.warns(BoxtuneWarning, match="check the spelling: instance_typo"):
        boxtune.Estimator(model_id=MODEL_ID, instance_typo="x")


def test_model_id_is_recovered_from_retrieved_uris():
    kwargs = dict(model_id=MODEL_ID, model_version="*")
    for uri in (
        boxtune.model_uris.retrieve(**kwargs, model_scope="training"),
        boxtune.image_uris.retrieve(region=None, framework=None, **kwargs, image_scope="training"),
        boxtune.script_uris.retrieve(**kwargs, script_scope="training"),
    ):
        assert boxtune.Estimator(model_uri=uri).model_id == MODEL_ID


def test_channels_accept_training_input_objects():
    legacy = types.SimpleNamespace(
        config={"DataSource": {"S3DataSource": {"S3Uri": "s3://b/train/"}}}
    )
    assert channel_uri(legacy, "training") == "s3://b/train/"
    assert channel_uri(types.SimpleNamespace(s3_data="s3://b/v"), "validation") == "s3://b/v"
    with pytest.raises(BoxtuneError, match="channel 'training'"):
        channel_uri(42, "training")


def test_incremental_training_from_a_bad_artifact_fails_with_the_reason(tiny_dataset, tmp_path):
    bogus = tmp_path / "old" / "model.tar.gz"
    bogus.parent.mkdir()
    bogus.write_bytes(b"not a tarball")
    estimator = boxtune.Estimator(model_uri=str(bogus), output_path=str(tmp_path / "out"))
    assert estimator.model_id is None and estimator.base_model == str(bogus)
    estimator.fit({"training": str(tiny_dataset)}, wait=False, job_name="incremental")
    job = jobs.get_job("incremental")
    assert job.command[job.command.index("--model") + 1] == str(bogus)
    assert job.inputs["model"] == str(bogus)
    with pytest.raises(TrainingError) as info:
        estimator.latest_training_job.wait(logs=False)
    assert "training job incremental failed" in str(info.value)
    assert "model.tar.gz" in str(info.value)


def test_only_changed_hyperparameters_reach_the_trainer(tiny_dataset, tmp_path):
    hp = boxtune.hyperparameters.retrieve_default(model_id=MODEL_ID, model_version="*")
    hp["epochs"] = "2"
    estimator = boxtune.Estimator(
        model_id=MODEL_ID, hyperparameters=hp, output_path=str(tmp_path / "out")
    )
    estimator.fit({"training": str(tiny_dataset)}, wait=False, job_name="diffed")
    job = jobs.stop_job("diffed", grace_s=5)
    assert job.status in ("stopped", "failed", "completed")
    assert [a for a in job.command if "=" in a] == ["epochs=2"]
    assert job.hyperparameters == hp  # the registry keeps everything the user passed


def test_missing_output_bucket_fails_before_training(tiny_dataset, s3_env):
    estimator = boxtune.Estimator(model_id=MODEL_ID, output_path="s3://no-such-output-bucket/x")
    with pytest.raises(BoxtuneError, match="bucket 'no-such-output-bucket' does not exist"):
        estimator.fit({"training": str(tiny_dataset)})
    assert jobs.list_jobs() == []


def test_session_uploads_to_s3_and_locally(tmp_path, tiny_dataset, s3_env, s3_bucket, monkeypatch):
    session = boxtune.Session()
    local = session.upload_data(str(tiny_dataset), key_prefix="datasets/tiny")
    assert Path(local, "annotations.json").is_file()

    monkeypatch.setenv("BOXTUNE_DEFAULT_BUCKET", s3_bucket)
    uri = session.upload_data(str(tiny_dataset), key_prefix="datasets/tiny")
    assert uri == f"s3://{s3_bucket}/datasets/tiny"
    assert "datasets/tiny/annotations.json" in s3_env.keys(s3_bucket)
    assert boxtune.get_execution_role()

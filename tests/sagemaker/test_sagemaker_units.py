"""boxtune.sagemaker's parts without training: the local bucket, the session, listing filters,
serializers, the SDK's exception classes, Predictor answers and errors over real HTTP, job
descriptions and analytics from real (tiny) registry jobs, boto3 against the local SageMaker
API, and batch transform with the offline TensorFlow detector."""

from __future__ import annotations

import io
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import boxtune.sagemaker as sagemaker
from boxtune import storage
from boxtune.sagemaker import deserializers, serializers
from boxtune.sagemaker.exceptions import UnexpectedStatusException
from boxtune.sagemaker.jumpstart.exceptions import JumpStartHyperparametersError
from boxtune.sagemaker.jumpstart.filters import And, Not, Or
from boxtune.sagemaker.jumpstart.notebook_utils import list_jumpstart_models

TF_MODEL = "tensorflow-od1-ssdlite-mobilenet-v2-300x300-person"
TORCH_MODEL = "pytorch-od1-efficientdet-lite0-320"
LOG_LINES = (
    "[Epoch 0], Speed: 1.000 samples/sec, loss=0.9000.\n"
    "[Epoch 0], Val_localization=0.5000, Val_classification=0.2500\n"
    "[Epoch 1], Speed: 1.000 samples/sec, loss=0.7000.\n"
    "[Epoch 1], Val_localization=0.4000, Val_classification=0.2000\n"
)
DEFINITIONS = [
    {"Name": "val_localization_loss", "Regex": "Val_localization=([0-9\\.]+)"},
    {"Name": "train_loss", "Regex": "loss=([0-9\\.]+)."},
]


# -- the default bucket is a folder ------------------------------------------------------------
def test_the_local_bucket_is_a_folder_every_storage_call_maps(boxtune_home, tmp_path):
    uri = "s3://boxtune-local/prefix/output/a.txt"
    storage.write_text(uri, "hello")
    assert (boxtune_home / "local-bucket" / "prefix" / "output" / "a.txt").read_text() == "hello"
    assert storage.exists(uri) and storage.read_text(uri) == "hello"
    assert storage.local_copy("s3://boxtune-local/prefix") == boxtune_home / "local-bucket/prefix"
    assert storage.list_files("s3://boxtune-local/prefix") == [uri]
    fs, path = storage.filesystem(uri)
    assert fs.cat_file(path) == b"hello"


def test_session_data_helpers_use_the_default_bucket(tmp_path):
    sess = sagemaker.Session()
    assert sess.default_bucket() == "boxtune-local"
    assert sess.get_caller_identity_arn() == sagemaker.get_execution_role()
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.bin").write_bytes(b"123")
    uri = sess.upload_data(str(folder), key_prefix="datasets/mine")
    assert uri == "s3://boxtune-local/datasets/mine"
    assert sess.read_s3_file("boxtune-local", "datasets/mine/sub/x.bin") == "123"
    assert sess.list_s3_files("boxtune-local", "datasets") == [f"{uri}/sub/x.bin"]
    downloaded = sess.download_data(str(tmp_path / "back"), "boxtune-local", "datasets/mine")
    assert [Path(p).read_bytes() for p in downloaded] == [b"123"]
    assert sagemaker.Session(default_bucket="other").default_bucket() == "other"


def test_a_configured_default_bucket_lives_on_the_s3_server(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_DEFAULT_BUCKET", s3_bucket)
    (tmp_path / "f.txt").write_text("x")
    uri = sagemaker.Session().upload_data(str(tmp_path / "f.txt"), key_prefix="k")
    assert uri == f"s3://{s3_bucket}/k/f.txt" and storage.read_text(uri) == "x"


# -- listing ------------------------------------------------------------------------------------
def test_listing_filters_use_the_platforms_task_and_framework_values():
    tensorflow = list_jumpstart_models(filter=And("task == od1", "framework == tensorflow"))
    assert TF_MODEL in tensorflow and TORCH_MODEL not in tensorflow
    either = list_jumpstart_models(filter=Or("framework == tensorflow", "framework == pytorch"))
    assert set(either) == set(list_jumpstart_models())
    assert TF_MODEL not in list_jumpstart_models(filter=Not("framework == tensorflow"))
    assert (TF_MODEL, "1.0.0") in list_jumpstart_models(list_versions=True)
    with pytest.raises(TypeError, match="filter operand"):
        And(3)


# -- serializers --------------------------------------------------------------------------------
def test_serializers_and_deserializers_round_trip(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG....")
    assert serializers.DataSerializer().serialize(str(image)) == b"\x89PNG...."
    assert serializers.IdentitySerializer("application/x-image").CONTENT_TYPE == (
        "application/x-image"
    )
    assert json.loads(serializers.JSONSerializer().serialize(np.arange(3))) == [0, 1, 2]
    assert serializers.CSVSerializer().serialize([[1, 2], [3, 4]]) == "1,2\n3,4"
    array = np.arange(6).reshape(2, 3)
    body = serializers.NumpySerializer().serialize(array)
    assert (
        deserializers.NumpyDeserializer().deserialize(io.BytesIO(body), "application/x-npy")
        == array
    ).all()
    answer = b'{"scores": [0.5]}'
    assert deserializers.BytesDeserializer().deserialize(io.BytesIO(answer), "") == answer
    assert deserializers.JSONDeserializer().deserialize(io.BytesIO(answer), "") == {"scores": [0.5]}
    assert deserializers.StringDeserializer().deserialize(io.BytesIO(answer), "") == answer.decode()


# -- the SDK's exceptions -----------------------------------------------------------------------
def test_validation_errors_are_the_sdks_value_errors_listing_every_problem():
    from boxtune.sagemaker import hyperparameters

    with pytest.raises(JumpStartHyperparametersError) as caught:
        hyperparameters.validate(
            model_id=TF_MODEL, hyperparameters={"epochs": "0", "learning_rate": "3"}
        )
    assert isinstance(caught.value, ValueError)
    assert "epochs='0'" in str(caught.value) and "learning_rate='3'" in str(caught.value)
    with pytest.raises(ValueError, match="tensorflow-od1-nope"):
        hyperparameters.retrieve_default(model_id="tensorflow-od1-nope", model_version="*")


def test_jumpstart_estimator_takes_model_id_and_version_positionally(tmp_path):
    from boxtune.sagemaker.jumpstart.estimator import JumpStartEstimator

    estimator = JumpStartEstimator(TORCH_MODEL, "*", hyperparameters={"epochs": 2})
    from boxtune.sagemaker.hyperparameters import retrieve_default

    values = estimator.hyperparameters()
    defaults = retrieve_default(model_id=TORCH_MODEL, model_version="*")
    assert values == {**defaults, "epochs": "2"}  # the model's defaults, the given value over them
    assert estimator.metric_definitions[0]["Name"] == "val_localization_loss"
    with pytest.raises(JumpStartHyperparametersError, match="optimizer"):
        JumpStartEstimator(TORCH_MODEL, "*", hyperparameters={"optimizer": "lbfgs"})
    with pytest.raises(ValueError, match="model_id"):
        JumpStartEstimator()


def test_a_bad_fit_fails_before_any_job_starts(tmp_path):
    from boxtune.jobs import list_jobs
    from boxtune.sagemaker.estimator import Estimator
    from boxtune.sagemaker.image_uris import retrieve

    image = retrieve(None, None, model_id=TORCH_MODEL, image_scope="training")
    estimator = Estimator(image, hyperparameters={"batch_size": "-1"})
    with pytest.raises(JumpStartHyperparametersError, match="batch_size"):
        estimator.fit({"training": str(tmp_path)})
    assert list_jobs() == []


# -- Predictor over real HTTP -------------------------------------------------------------------
class _Endpoint(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if body == b"bad":
            status, answer = 400, {"error": "the body is not an image (file: request body)"}
        else:
            status = 200
            answer = {"accept": self.headers["Accept"], "type": self.headers["Content-Type"]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_predict_returns_what_the_deserializer_makes(endpoint_url):
    from botocore.exceptions import ClientError

    predictor = sagemaker.Predictor(endpoint_url)
    raw = predictor.predict(b"img", {"ContentType": "application/x-image", "Accept": "a/b"})
    assert type(raw) is bytes and json.loads(raw) == {
        "accept": "a/b",
        "type": "application/x-image",
    }
    parsed = sagemaker.Predictor(
        endpoint_url,
        serializer=serializers.IdentitySerializer("application/x-image"),
        deserializer=deserializers.JSONDeserializer("application/json;verbose"),
    ).predict(b"img")
    assert parsed == {"accept": "application/json;verbose", "type": "application/x-image"}
    json.dumps(parsed)  # a plain dict
    with pytest.raises(ClientError) as caught:
        predictor.predict(b"bad")
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelError" and "not an image (file: request body)" in error["Message"]
    assert "(400)" in error["Message"]


def test_model_deploy_returns_none_without_a_predictor_class(monkeypatch):
    from boxtune.sagemaker import model as model_module

    started = []

    class _Endpoint:
        name = "ep-1"

    monkeypatch.setattr(
        model_module, "start_background_endpoint", lambda *a, **k: started.append(k) or _Endpoint
    )
    assert sagemaker.Model(model_data=TF_MODEL, model_id=TF_MODEL).deploy(1, "ml.m5") is None
    predictor = sagemaker.Model(model_id=TF_MODEL, predictor_cls=sagemaker.Predictor).deploy()
    assert isinstance(predictor, sagemaker.Predictor) and predictor.endpoint_name == "ep-1"
    from boxtune.sagemaker.jumpstart.model import JumpStartModel

    jumpstart = JumpStartModel(TF_MODEL).deploy()
    assert isinstance(jumpstart.deserializer, deserializers.JSONDeserializer)
    assert len(started) == 3


# -- jobs: descriptions, analytics, boto3, failures ---------------------------------------------
def _script_job(tmp_path, code: str, name: str):
    from boxtune.jobs import submit_job, wait_for_job

    script = tmp_path / f"{name}.py"
    script.write_text(code)
    job = submit_job(
        [sys.executable, str(script)], name=name, metric_definitions=DEFINITIONS, source="sdk"
    )
    return wait_for_job(job.name, timeout=120)


def test_describe_and_analytics_read_the_jobs_log(tmp_path):
    from boxtune.sagemaker.estimator import TrainingJob

    job = _script_job(tmp_path, f"print({LOG_LINES!r}, end='')", "metrics-job")
    description = TrainingJob(job.name).describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert description["AlgorithmSpecification"]["MetricDefinitions"] == DEFINITIONS
    final = {m["MetricName"]: m["Value"] for m in description["FinalMetricDataList"]}
    assert final == {"val_localization_loss": 0.4, "train_loss": 0.7}
    frame = sagemaker.TrainingJobAnalytics(job.name).dataframe()
    # One metric after the other (as the SDK appends them), each in epoch order.
    assert list(frame["metric_name"]) == ["val_localization_loss"] * 2 + ["train_loss"] * 2
    assert list(frame["value"]) == [0.5, 0.4, 0.9, 0.7]
    only = sagemaker.TrainingJobAnalytics(job.name, metric_names=["train_loss"]).dataframe()
    assert list(only["value"]) == [0.9, 0.7]
    with pytest.raises(Exception, match="no metric named nope"):
        sagemaker.TrainingJobAnalytics(job.name, metric_names=["nope"]).dataframe()


def test_boto3_reads_jobs_through_the_local_sagemaker_api(tmp_path, monkeypatch):
    import boto3
    from botocore.exceptions import ClientError

    from boxtune.sagemaker.api_server import start_api_server

    job = _script_job(tmp_path, f"print({LOG_LINES!r}, end='')", "boto-job")
    server = start_api_server()
    try:
        client = boto3.client(
            "sagemaker",
            region_name="us-west-2",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        answer = client.describe_training_job(TrainingJobName=job.name)
        assert answer["TrainingJobStatus"] == "Completed"
        assert answer["TrainingEndTime"].year >= 2026  # parsed as a datetime by botocore
        names = [s["TrainingJobName"] for s in client.list_training_jobs()["TrainingJobSummaries"]]
        assert job.name in names
        with pytest.raises(ClientError, match="no training job named 'nope'"):
            client.describe_training_job(TrainingJobName="nope")
    finally:
        server.shutdown()


def test_a_failed_job_raises_unexpected_status_with_the_reason(tmp_path):
    from boxtune.sagemaker.estimator import wait_for_training

    job = _script_job(
        tmp_path, "import sys\nprint('error: the disk is full')\nsys.exit(3)\n", "failing-job"
    )
    with pytest.raises(UnexpectedStatusException) as caught:
        wait_for_training(job.name, logs=False)
    assert isinstance(caught.value, ValueError)
    assert caught.value.actual_status == "Failed"
    assert caught.value.allowed_statuses == ["Completed", "Stopped"]
    assert "the disk is full" in str(caught.value)


# -- batch transform ----------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_transform_writes_one_answer_per_image(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(images / "astronaut.jpg")
    (images / "notes.jpg").write_bytes(b"not an image")
    transformer = sagemaker.Model(model_id=TF_MODEL).transformer(1, "ml.m5.xlarge")
    with pytest.raises(UnexpectedStatusException, match="Transform job"):
        transformer.transform(str(images), content_type="application/x-image", logs=False)
    output = f"s3://boxtune-local/{transformer.latest_transform_job.name}"
    answer = json.loads(storage.read_text(f"{output}/astronaut.jpg.out"))
    assert answer["labels"][answer["classes"][0]] == "person" and answer["scores"][0] > 0.5
    assert not storage.exists(f"{output}/notes.jpg.out")
    (images / "notes.jpg").unlink()
    transformer.transform(str(images), job_name="transform-again", logs=False)
    assert storage.exists("s3://boxtune-local/transform-again/astronaut.jpg.out")

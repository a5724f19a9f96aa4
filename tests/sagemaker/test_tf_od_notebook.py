"""The platform's TensorFlow object-detection example notebook, replayed cell by cell with
only its imports changed (tf_od_notebook_cells.py), against a real S3 server (moto) holding
the dataset and the test images, boxtune's local SageMaker API for the notebook's direct boto3
call, and the offline TensorFlow person detector. The ``use_amt=True`` branch runs: a tuning
job of 2 trials, 2 in parallel, then analytics, deploy, query and incremental training.

The pictures the notebook draws are saved to test-output/notebook-*.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.s3_server import S3Server
from tests.sagemaker.tf_od_notebook_cells import CELLS

MODEL_ID = "tensorflow-od1-ssdlite-mobilenet-v2-300x300-person"
REGION = "us-west-2"
ASSETS_BUCKET = f"jumpstart-cache-prod-{REGION}"
DATASET_PREFIX = "training-datasets/PennFudanPed_COCO_format"
TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"

pytestmark = pytest.mark.slow


def _dataset_with_the_notebooks_image(root: Path) -> Path:
    """The sample dataset with its first image stored as FudanPed00001.png (the notebook's
    query image lives in the training set's images/)."""
    from boxtune.data import generate_sample_dataset

    dataset = generate_sample_dataset(root / "shapes", images=10, seed=5)
    annotations = json.loads((dataset / "annotations.json").read_text())
    first = annotations["images"][0]
    old = dataset / "images" / first["file_name"]
    Image.open(old).save(dataset / "images" / "FudanPed00001.png")
    old.unlink()
    first["file_name"] = "FudanPed00001.png"
    (dataset / "annotations.json").write_text(json.dumps(annotations))
    return dataset


@pytest.fixture
def notebook(s3_env: S3Server, tmp_path, monkeypatch):
    """A kernel namespace with the notebook's world around it: the S3 assets, the region, the
    local SageMaker API for boto3, a working directory for downloads."""
    import matplotlib

    from boxtune import storage
    from boxtune.sagemaker.api_server import start_api_server

    matplotlib.use("Agg")
    skimage_data = pytest.importorskip("skimage.data")
    s3_env.create_bucket(ASSETS_BUCKET)
    dataset = _dataset_with_the_notebooks_image(tmp_path)
    storage.upload(dataset, f"s3://{ASSETS_BUCKET}/{DATASET_PREFIX}")
    astronaut = tmp_path / "Naxos_Taverna.jpg"
    Image.fromarray(skimage_data.astronaut()).save(astronaut, quality=92)
    storage.upload(astronaut, f"s3://{ASSETS_BUCKET}/inference-notebook-assets/Naxos_Taverna.jpg")

    api = start_api_server()
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint_url)  # boto3's S3 client
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{api.server_address[1]}")
    monkeypatch.chdir(tmp_path)
    displayed: list = []
    namespace = {
        "__name__": "__notebook__",
        "display": displayed.append,  # the kernel's display(): what the cell showed
        "MODEL_ID": MODEL_ID,
        "EPOCHS": "1",
        "USE_AMT": True,
        "MAX_JOBS": 2,
        "_displayed": displayed,
    }
    yield namespace
    api.shutdown()
    from boxtune.jobs import list_endpoints, stop_endpoint

    for endpoint in list_endpoints():
        if endpoint.is_active:
            stop_endpoint(endpoint.name)


def _save_figure(name: str) -> Path:
    from matplotlib import pyplot as plt

    TEST_OUTPUT.mkdir(exist_ok=True)
    path = TEST_OUTPUT / name
    plt.gcf().savefig(path, dpi=40)
    plt.close("all")
    return path


def _run(namespace: dict, first: int, last: int) -> None:
    for index in range(first, last + 1):
        exec(compile(CELLS[index], f"<notebook cell {index}>", "exec"), namespace)


def _cell(fragment: str) -> int:
    (index,) = [i for i, cell in enumerate(CELLS) if fragment in cell]
    return index


def test_the_tensorflow_notebook_runs_with_only_its_imports_changed(notebook):
    from boxtune.jobs import get_endpoint, get_job, list_jobs
    from boxtune.storage import exists

    ns = notebook
    # -- set up, pick the model from the filtered listing
    _run(ns, 0, _cell("widgets.Dropdown("))
    assert ns["aws_role"].startswith("arn:aws:iam::")
    assert ns["aws_region"] == REGION
    assert MODEL_ID in ns["tensorflow_od_models"]
    assert all(m.startswith("tensorflow-") for m in ns["tensorflow_od_models"])
    assert ns["_displayed"][-1] is ns["dropdown"]

    # -- deploy the pretrained model as is, query it, parse and draw the answer
    _run(ns, _cell("base_model_predictor = model.deploy("), _cell("def display_predictions("))
    response = ns["query_response"]
    assert type(response) is bytes  # the SDK's default BytesDeserializer
    boxes, names, scores = ns["normalized_boxes"], ns["classes_names"], ns["confidences"]
    assert 1 <= len(boxes) <= 5  # n_predictions=5
    assert names[0] == "person" and scores[0] > 0.5, (names, scores)
    left, top, right, bottom = boxes[0]  # the astronaut: most of the picture's left half
    assert 0 <= left < 0.3 and right > 0.45 and top < 0.2 and bottom > 0.8, boxes[0]
    _run(ns, _cell("display_predictions(Naxos_Taverna"), _cell("display_predictions(Naxos_Taverna"))
    assert _save_figure("notebook-pretrained.png").stat().st_size > 10_000
    endpoint_name = ns["base_model_predictor"].endpoint_name
    _run(
        ns,
        _cell("base_model_predictor.delete_endpoint()"),
        _cell("base_model_predictor.delete_endpoint()"),
    )
    assert get_endpoint(endpoint_name).status != "running"

    # -- fine-tune with automatic model tuning: 2 trials, 2 in parallel
    _run(ns, _cell("train_image_uri = image_uris.retrieve("), _cell("hp_tuner.fit("))
    assert ns["hyperparameters"]["epochs"] == "1"
    trials = [job for job in list_jobs() if job.source == "tuning"]
    assert len(trials) == 2, [(j.name, j.status) for j in trials]
    assert {job.status for job in trials} == {"completed"}, [j.failure_reason for j in trials]
    assert len({job.hyperparameters["learning_rate"] for job in trials}) == 2

    # -- the best trial, its metrics from the log
    _run(ns, _cell("training_job_name = hp_tuner.best_training_job()"), _cell("metrics_df ="))
    best = get_job(ns["training_job_name"])
    assert best.name in {job.name for job in trials}
    assert ns["link"].endswith(best.name)
    frame = ns["df"]
    assert list(frame.columns) == ["timestamp", "metric_name", "value"]
    localization = ns["metrics_df"]["val_localization_loss"]
    assert len(localization) == 1 and np.isfinite(localization["value"]).all()
    assert set(frame["metric_name"]) >= {"val_localization_loss", "train_loss"}

    # -- deploy the best model, query it with the notebook's pedestrian image, draw
    _run(ns, _cell("finetuned_predictor = (hp_tuner"), _cell("display_predictions(pedestrian"))
    from boxtune.data.sample import CLASSES

    labels = json.loads(ns["query_response"])["labels"]
    assert sorted(labels) == sorted(CLASSES.values()), labels  # the new head's classes
    assert set(ns["classes_names"]) <= set(labels)
    assert _save_figure("notebook-finetuned.png").stat().st_size > 10_000
    endpoint_name = ns["finetuned_predictor"].endpoint_name
    _run(
        ns,
        _cell("finetuned_predictor.delete_endpoint()"),
        _cell("finetuned_predictor.delete_endpoint()"),
    )
    assert get_endpoint(endpoint_name).status != "running"

    # -- incremental training from the best trial's model.tar.gz (found through boto3)
    _run(ns, _cell("sage_client = boto3.Session()"), _cell("incremental_train_estimator.fit("))
    assert ns["last_training_job_name"] == best.name
    assert exists(ns["last_trained_model_path"])
    incremental = get_job(ns["incremental_train_estimator"].latest_training_job.name)
    assert incremental.status == "completed"
    assert incremental.base_model == ns["last_trained_model_path"]
    assert exists(incremental.model_data)

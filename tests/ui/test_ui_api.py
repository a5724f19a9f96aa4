"""The console's JSON API and token gate, in process (starlette's TestClient), and one real
``boxtune ui`` process bound to every interface.

Every test runs over its own ``BOXTUNE_HOME``; nothing here trains a model or starts a job
(the browser test does that): the job and endpoint routes are checked on what they refuse,
and on records written straight into the registry.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from boxtune.data import generate_sample_dataset
from boxtune.ui.app import create_app
from boxtune.ui.auth import COOKIE
from boxtune.ui.server import is_loopback, startup_lines

DEFAULT_MODEL = "pytorch-od1-efficientdet-lite0-320"
TOKEN = "s3cret"

# --- helpers -----------------------------------------------------------------------------------


def zip_bytes(entries: dict[str | zipfile.ZipInfo, bytes]) -> bytes:
    """A zip of ``entries`` (name or ZipInfo -> content); duplicate names are allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
    return buffer.getvalue()


def folder_entries(folder: Path, prefix: str = "") -> dict[str | zipfile.ZipInfo, bytes]:
    """The files under ``folder`` as zip entries named ``prefix + relative path``."""
    return {
        prefix + path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def symlink_entry(name: str, target: str = "/etc/passwd") -> dict[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return {info: target.encode()}


def leftovers(home: Path) -> list[str]:
    """What is under BOXTUNE_HOME/datasets besides an empty ``.uploads`` folder."""
    root = home / "datasets"
    if not root.exists():
        return []
    found = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    return sorted(name for name in found if name != ".uploads")


def stop_everything() -> None:
    from boxtune.jobs import list_endpoints, list_jobs, stop_endpoint, stop_job

    for job in list_jobs():
        if job.is_active:
            stop_job(job.name, grace_s=5)
    for endpoint in list_endpoints():
        if endpoint.is_active:
            stop_endpoint(endpoint.name, grace_s=5)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    yield home
    stop_everything()  # a test that failed by starting something must not leave it running


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def source_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small valid dataset outside any BOXTUNE_HOME (what a user would zip)."""
    return generate_sample_dataset(tmp_path_factory.mktemp("source") / "shapes", images=6, seed=1)


def broken_dataset(folder: Path) -> Path:
    """A sample dataset with an impossible box on annotations[0] and images[1]'s file gone."""
    generate_sample_dataset(folder, images=4, seed=2)
    doc = json.loads((folder / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [400.0, 300.0, 100.0, 100.0]
    (folder / "annotations.json").write_text(json.dumps(doc))
    (folder / "images" / doc["images"][1]["file_name"]).unlink()
    return folder


def assert_error(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"], body
    assert "hint" in body and "where" in body, body
    text = json.dumps(body)
    for needle in needles:
        assert needle in text, f"{needle!r} not in {body}"
    return body


# --- models and hyperparameters ----------------------------------------------------------------


def test_models_lists_the_catalog_with_console_facts(client: TestClient) -> None:
    from boxtune.catalog import list_specs

    response = client.get("/api/models")
    assert response.status_code == 200
    body = response.json()
    assert body["default"] == DEFAULT_MODEL
    ids = [entry["model_id"] for entry in body["models"]]
    assert ids == [spec.model_id for spec in list_specs()]
    by_id = {entry["model_id"]: entry for entry in body["models"]}
    default = by_id[DEFAULT_MODEL]
    assert default["is_default"] is True
    assert sum(entry["is_default"] for entry in body["models"]) == 1
    # A fresh BOXTUNE_HOME has no downloaded weights; the default ships its backbone in a
    # Python package, so it works offline all the same.
    assert default["weights_cached"] is False
    assert default["works_offline"] is True
    assert default["trainable"] is True
    assert default["deployable"] is False
    for entry in body["models"]:
        assert isinstance(entry["weights_cached"], bool)
        assert entry["trainable"] == (entry["task"] != "od")
        assert entry["works_offline"] == (entry["offline"] or entry["weights_cached"])
    assert any(not entry["works_offline"] for entry in body["models"]), "all offline?"


def test_cached_weights_make_a_model_work_offline(client: TestClient) -> None:
    from boxtune.catalog import cached_weights_path, list_specs

    spec = next(spec for spec in list_specs() if not spec.offline)
    before = client.get(f"/api/models/{spec.model_id}").json()["model"]
    assert (before["weights_cached"], before["works_offline"]) == (False, False)
    path = cached_weights_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"placed by hand")
    after = client.get(f"/api/models/{spec.model_id}").json()["model"]
    assert (after["weights_cached"], after["works_offline"]) == (True, True)
    listed = {m["model_id"]: m for m in client.get("/api/models").json()["models"]}
    assert listed[spec.model_id]["works_offline"] is True


def test_model_details_include_the_hyperparameter_form(client: TestClient) -> None:
    body = client.get(f"/api/models/{DEFAULT_MODEL}").json()
    assert body["model"]["model_id"] == DEFAULT_MODEL
    options = {option["name"]: option for option in body["hyperparameters"]}
    assert options["epochs"]["default"] == body["model"]["default_hyperparameters"]["epochs"]
    assert options["early_stopping"]["choices"] == ["True", "False"]
    assert "adam" in options["optimizer"]["choices"]


def test_unknown_model_is_400_with_a_close_match(client: TestClient) -> None:
    response = client.get("/api/models/pytorch-od1-efficientdet-lite")
    body = assert_error(response, 400, "pytorch-od1-efficientdet-lite")
    assert "did you mean" in body["hint"] and DEFAULT_MODEL in body["hint"]


def test_hyperparameter_check_reports_each_field(client: TestClient) -> None:
    from boxtune.errors import HyperparameterError
    from boxtune.train.hyperparameters import parse_hyperparameters

    values = {"epochs": "0", "learning_rate": "7", "bogus_option": "1", "batch_size": "4"}
    response = client.post(
        "/api/hyperparameters/check", json={"model_id": DEFAULT_MODEL, "hyperparameters": values}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert set(body["problems"]) == {"epochs", "learning_rate", "bogus_option"}
    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters(DEFAULT_MODEL, values)
    assert body["problems"] == caught.value.problems  # the library's own messages
    assert "out of range" in body["problems"]["epochs"]
    assert "unknown name" in body["problems"]["bogus_option"]
    for problem in body["problems"].values():
        assert problem in body["error"]


def test_hyperparameter_check_accepts_good_values(client: TestClient) -> None:
    response = client.post(
        "/api/hyperparameters/check",
        json={"model_id": DEFAULT_MODEL, "hyperparameters": {"epochs": 3, "batch_size": "4"}},
    )
    assert response.json() == {"ok": True, "problems": {}}


def test_hyperparameter_check_needs_a_model_id(client: TestClient) -> None:
    response = client.post("/api/hyperparameters/check", json={"hyperparameters": {}})
    body = assert_error(response, 400, "model_id is missing")
    assert body["where"] == "model_id"


def test_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post("/api/hyperparameters/check", content=b"{not json")
    assert_error(response, 400, "not JSON")
    response = client.post("/api/hyperparameters/check", json=["a", "list"])
    assert_error(response, 400, "not a JSON object")


# --- data: sample, validate, preview -----------------------------------------------------------


def test_sample_is_created_under_home_and_reused(client: TestClient, home: Path) -> None:
    response = client.post("/api/data/sample", json={"images": 12})
    assert response.status_code == 200, response.text
    folder = home / "datasets" / "sample-12"
    assert response.json() == {"location": str(folder)}
    doc = json.loads((folder / "annotations.json").read_text())
    assert len(doc["images"]) == 12
    assert len(list((folder / "images").iterdir())) == 12
    marker = folder / "images" / "kept-by-reuse.txt"
    marker.write_text("a second call must not regenerate the folder")
    again = client.post("/api/data/sample", json={"images": "12"})
    assert again.json() == {"location": str(folder)}
    assert marker.exists()


@pytest.mark.parametrize("images", ["0", "abc", 5000, -3, 2.5, None, True])
def test_sample_refuses_bad_image_counts(client: TestClient, home: Path, images) -> None:
    response = client.post("/api/data/sample", json={"images": images})
    body = assert_error(response, 400, "images=", "2000")
    assert body["where"] == "images"
    assert not (home / "datasets").exists() or not any((home / "datasets").iterdir())


def test_validate_the_sample(client: TestClient) -> None:
    location = client.post("/api/data/sample", json={"images": 12}).json()["location"]
    response = client.post("/api/data/validate", json={"location": location})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["location"] == location
    assert body["report"]["ok"] is True and body["report"]["errors"] == []
    assert body["stats"]["images"] == 12
    assert body["stats"]["boxes"] >= 12
    assert {c["name"] for c in body["stats"]["classes"]} >= {"circle", "square"}
    assert body["preview_url"].startswith("/api/data/preview.png?location=")
    preview = client.get(body["preview_url"])
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/png"
    assert preview.content.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(io.BytesIO(preview.content)) as sheet:
        assert sheet.width > 100 and sheet.height > 100


def test_validate_a_broken_dataset_lists_every_error(client: TestClient, tmp_path: Path) -> None:
    folder = broken_dataset(tmp_path / "broken")
    response = client.post("/api/data/validate", json={"location": str(folder)})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["stats"] is None and body["preview_url"] is None
    errors = body["report"]["errors"]
    for issue in errors:
        assert issue["file"] and issue["hint"], issue
    by_field = {issue["field"]: issue for issue in errors}
    assert "bbox" in by_field and "file_name" in by_field, errors
    assert by_field["bbox"]["record"].startswith("annotations[0]")
    assert by_field["bbox"]["file"] == "annotations.json"
    missing = by_field["file_name"]
    assert missing["record"].startswith("images[1]")
    assert "does not exist" in missing["message"]


def test_validate_a_missing_folder(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/api/data/validate", json={"location": str(tmp_path / "nowhere")})
    body = response.json()
    assert body["ok"] is False
    assert body["report"]["errors"][0]["code"] == "missing-dataset"


def test_validate_needs_a_location(client: TestClient) -> None:
    body = assert_error(client.post("/api/data/validate", json={"location": "  "}), 400)
    assert body["where"] == "location"


def test_preview_needs_a_readable_location(client: TestClient, tmp_path: Path) -> None:
    assert_error(client.get("/api/data/preview.png"), 400, "location is missing")
    assert_error(
        client.get("/api/data/preview.png", params={"location": str(tmp_path / "nowhere")}),
        400,
        "does not exist",
    )


# --- data: upload ------------------------------------------------------------------------------


def upload(client: TestClient, body: bytes, filename: str = "shapes.zip") -> httpx.Response:
    return client.post("/api/data/upload", params={"filename": filename}, content=body)


@pytest.mark.parametrize("prefix", ["", "shapes/"], ids=["top-level", "in-a-folder"])
def test_upload_a_good_zip(
    client: TestClient, home: Path, source_dataset: Path, prefix: str
) -> None:
    entries = folder_entries(source_dataset, prefix)
    entries["__MACOSX/._annotations.json"] = b"resource fork"
    entries[f"{prefix}images/.DS_Store"] = b"finder"
    response = upload(client, zip_bytes(entries), "my shapes.zip")
    assert response.status_code == 200, response.text
    location = Path(response.json()["location"])
    assert location == home / "datasets" / "my-shapes"
    assert (location / "annotations.json").read_bytes() == (
        source_dataset / "annotations.json"
    ).read_bytes()
    assert not (location / "images" / ".DS_Store").exists()
    assert not (location / "__MACOSX").exists()
    answer = client.post("/api/data/validate", json={"location": str(location)}).json()
    assert answer["ok"] is True, answer["report"]
    assert answer["stats"]["images"] == 6
    assert {name.split("/")[0] for name in leftovers(home)} == {"my-shapes"}
    assert list((home / "datasets" / ".uploads").iterdir()) == []


def test_upload_twice_gets_two_folders(
    client: TestClient, home: Path, source_dataset: Path
) -> None:
    body = zip_bytes(folder_entries(source_dataset))
    first = upload(client, body).json()["location"]
    second = upload(client, body).json()["location"]
    assert Path(first).name == "shapes" and Path(second).name == "shapes-2"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"../evil.txt": b"x"}, "'../evil.txt' would land outside"),
        ({"images/../../evil.txt": b"x"}, "would land outside"),
        ({"/tmp/evil.txt": b"x"}, "'/tmp/evil.txt' would land outside"),
        ({"images\\evil.jpg": b"x"}, "backslash"),
        (symlink_entry("images/link.jpg"), "'images/link.jpg' is a symbolic link"),
    ],
    ids=["traversal", "traversal-inside", "absolute", "backslash", "symlink"],
)
def test_upload_refuses_unsafe_zips(
    client: TestClient, home: Path, source_dataset: Path, extra: dict, needle: str
) -> None:
    entries = {**folder_entries(source_dataset), **extra}
    body = assert_error(upload(client, zip_bytes(entries), "bad.zip"), 400, needle)
    assert body["where"] == "bad.zip"
    assert body["error"].startswith("cannot unpack the zip")
    assert leftovers(home) == []
    assert not (home / "evil.txt").exists() and not (home / "datasets" / "evil.txt").exists()


def test_upload_without_annotations(client: TestClient, home: Path) -> None:
    body = zip_bytes({"images/a.jpg": b"not really", "readme.txt": b"hello"})
    response = upload(client, body, "photos.zip")
    error = assert_error(response, 400, "no annotations.json", "images/a.jpg", "readme.txt")
    assert error["where"] == "photos.zip"
    assert leftovers(home) == []


def test_upload_nested_too_deep(client: TestClient, home: Path, source_dataset: Path) -> None:
    body = zip_bytes(folder_entries(source_dataset, "a/b/"))
    assert_error(upload(client, body), 400, "nested too deep", "a/b/annotations.json")
    assert leftovers(home) == []


def test_upload_refuses_other_files(client: TestClient, home: Path) -> None:
    body = assert_error(upload(client, b"PK\x03\x04", "dataset.tar.gz"), 400, "not a .zip file")
    assert body["where"] == "dataset.tar.gz"
    assert_error(upload(client, b"", "empty.zip"), 400, "empty.zip is empty")
    assert_error(upload(client, b"just text", "fake.zip"), 400, "not a readable zip")
    assert leftovers(home) == []


def test_upload_over_the_limit(home: Path, source_dataset: Path) -> None:
    body = zip_bytes(folder_entries(source_dataset))
    limit = len(body) - 1
    with TestClient(create_app(max_upload_bytes=limit)) as small:
        response = upload(small, body, "big.zip")
        error = assert_error(response, 413, "big.zip is larger than the upload limit", "KiB")
        assert "--max-upload-mb" in error["hint"]

        # No Content-Length (a chunked body): the stream is counted as it arrives.
        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        streamed = small.post("/api/data/upload", params={"filename": "big.zip"}, content=chunks())
        assert_error(streamed, 413, "larger than the upload limit")
        assert leftovers(home) == []
        uploads = home / "datasets" / ".uploads"
        assert not uploads.exists() or list(uploads.iterdir()) == []
    with TestClient(create_app(max_upload_bytes=len(body))) as exact:
        assert upload(exact, body).status_code == 200


# --- jobs --------------------------------------------------------------------------------------


def registry_jobs() -> list:
    from boxtune.jobs import list_jobs

    return list_jobs()


def test_unknown_api_route_is_json_404(client: TestClient) -> None:
    body = assert_error(client.get("/api/nothing/here"), 404, "/api/nothing/here")
    assert "/api/models" in body["hint"]
    wrong_method = client.delete("/api/models")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("application/json")


def test_start_job_without_training_data(client: TestClient) -> None:
    body = assert_error(
        client.post("/api/jobs", json={"model_id": DEFAULT_MODEL}), 400, "training is missing"
    )
    assert body["where"] == "training"
    assert registry_jobs() == []


def test_start_job_with_invalid_training_data(client: TestClient, tmp_path: Path) -> None:
    folder = broken_dataset(tmp_path / "broken")
    response = client.post("/api/jobs", json={"model_id": DEFAULT_MODEL, "training": str(folder)})
    body = assert_error(response, 400, "the training dataset is invalid", "annotations.json")
    assert body["where"] == "training"
    assert registry_jobs() == []


def test_start_job_with_invalid_validation_data(
    client: TestClient, tmp_path: Path, source_dataset: Path
) -> None:
    response = client.post(
        "/api/jobs",
        json={
            "model_id": DEFAULT_MODEL,
            "training": str(source_dataset),
            "validation": str(tmp_path / "nowhere"),
        },
    )
    body = assert_error(response, 400, "the validation dataset is invalid")
    assert body["where"] == "validation"
    assert registry_jobs() == []


def test_start_job_with_bad_hyperparameters(client: TestClient, source_dataset: Path) -> None:
    response = client.post(
        "/api/jobs",
        json={
            "model_id": DEFAULT_MODEL,
            "training": str(source_dataset),
            "hyperparameters": {"epochs": "-1", "optimizer": "sgdd"},
        },
    )
    body = assert_error(response, 422, "epochs")
    assert set(body["problems"]) == {"epochs", "optimizer"}
    assert registry_jobs() == []


def test_start_job_with_unknown_model(client: TestClient, source_dataset: Path) -> None:
    response = client.post(
        "/api/jobs", json={"model_id": "no-such-model", "training": str(source_dataset)}
    )
    assert_error(response, 400, "no-such-model")
    assert registry_jobs() == []


def test_unknown_job_is_400_naming_it(client: TestClient) -> None:
    for path in ("/api/jobs/ghost-job", "/api/jobs/ghost-job/charts/loss.svg"):
        assert_error(client.get(path), 400, "no training job named 'ghost-job'")
    for action in ("stop", "resume", "evaluate", "deploy"):
        assert_error(client.post(f"/api/jobs/ghost-job/{action}"), 400, "'ghost-job'")
    assert client.get("/api/jobs").json() == {"jobs": []}


def insert_completed_job(home: Path, name: str, epochs: int, *, total: int = 3):
    """A finished job's record and metrics, as the supervisor leaves them (no training)."""
    from boxtune.jobs import JobRecord, Registry
    from boxtune.jobs.store import COMPLETED

    work_dir = home / "jobs" / name
    output = work_dir / "train-output"
    output.mkdir(parents=True)
    records = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e} for e in range(1, epochs + 1)]
    (output / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (work_dir / "job.log").write_text("epoch 1 done\n")
    now = time.time()
    job = JobRecord(
        name=name,
        status=COMPLETED,
        model_id=DEFAULT_MODEL,
        base_model=None,
        hyperparameters={"epochs": str(total)},
        inputs={"training": str(home / "nowhere")},
        output_path=None,
        model_data=None,
        work_dir=str(work_dir),
        log_path=str(work_dir / "job.log"),
        command=["true"],
        exit_code=0,
        created_at=now - 60,
        started_at=now - 50,
        ended_at=now - 20,
        source="ui",
    )
    Registry().insert_job(job)
    return job


def test_completed_job_summary_and_charts(client: TestClient, home: Path) -> None:
    insert_completed_job(home, "finished-job", epochs=2)
    listing = client.get("/api/jobs").json()["jobs"]
    assert [job["name"] for job in listing] == ["finished-job"]
    assert listing[0]["progress"]["epochs_done"] == 2
    assert listing[0]["progress"]["fraction"] == 1.0
    assert "metrics" not in listing[0]
    shown = client.get("/api/jobs/finished-job").json()
    assert shown["status"] == "completed"
    assert len(shown["metrics"]) == 2
    assert "epoch 1 done" in shown["log_tail"]
    assert shown["evaluation"] is None and shown["endpoints"] == []
    chart = client.get("/api/jobs/finished-job/charts/loss.svg")
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert 'data-points="4"' in chart.text
    assert_error(client.get("/api/jobs/finished-job/charts/nope.svg"), 400, "no chart named")
    # No model.tar.gz was written: deploy and evaluate say so, and nothing starts.
    assert_error(client.post("/api/jobs/finished-job/deploy"), 400, "has no model yet")
    assert_error(client.post("/api/jobs/finished-job/evaluate"), 400, "has no model yet")
    assert_error(client.get("/api/jobs/finished-job/report"), 400, "no evaluation report")
    from boxtune.jobs import list_endpoints

    assert list_endpoints() == []
    assert [job.name for job in registry_jobs()] == ["finished-job"]


# --- endpoints ---------------------------------------------------------------------------------


def test_unknown_endpoint_is_400(client: TestClient) -> None:
    response = client.post(
        "/api/endpoints/ghost-endpoint/invocations",
        content=b"\x89PNG",
        headers={"content-type": "image/png"},
    )
    assert_error(response, 400, "no endpoint named 'ghost-endpoint'")
    assert_error(client.get("/api/endpoints/ghost-endpoint"), 400, "'ghost-endpoint'")
    assert_error(client.post("/api/endpoints/ghost-endpoint/stop"), 400, "'ghost-endpoint'")
    assert client.get("/api/endpoints").json() == {"endpoints": []}


def test_deploy_a_model_that_needs_fine_tuning(client: TestClient) -> None:
    from boxtune.jobs import list_endpoints

    response = client.post("/api/endpoints", json={"model_id": DEFAULT_MODEL})
    body = assert_error(response, 400, "not deployable as is", DEFAULT_MODEL)
    assert body["where"] == "model_id"
    assert "fine-tune" in body["hint"]
    assert_error(client.post("/api/endpoints", json={}), 400, "model_id is missing")
    assert_error(client.post("/api/endpoints", json={"model_id": "nope"}), 400, "'nope'")
    assert list_endpoints() == []


# --- pages -------------------------------------------------------------------------------------

PAGES = ["/models", "/data", "/train", "/jobs", "/jobs/some-job", "/endpoints", "/endpoints/e"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_render(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()


def test_home_redirects_and_static_files_serve(client: TestClient) -> None:
    home_page = client.get("/", follow_redirects=False)
    assert home_page.status_code == 303 and home_page.headers["location"] == "/models"
    css = client.get("/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/nothing").status_code == 404


# --- the token gate ----------------------------------------------------------------------------

GATED = [
    ("GET", "/"),
    *[("GET", page) for page in PAGES],
    ("GET", "/static/console.css"),
    ("GET", "/static/console.js"),
    ("GET", "/api/models"),
    ("GET", f"/api/models/{DEFAULT_MODEL}"),
    ("GET", "/api/jobs"),
    ("GET", "/api/endpoints"),
    ("GET", "/api/nothing"),
    ("POST", "/api/data/sample"),
    ("POST", "/api/jobs"),
    ("POST", "/api/data/upload?filename=a.zip"),
]


@pytest.fixture
def gated(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(token=TOKEN)) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path"), GATED)
def test_token_gate_refuses_without_the_token(
    gated: TestClient, home: Path, method: str, path: str
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic czNjcmV0"},
        {"Authorization": "s3cret"},
    ):
        response = gated.request(method, path, headers=headers, follow_redirects=False)
        assert response.status_code == 401, (headers, response.text)
        if path.startswith("/api/"):
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["error"] == "this console needs its access token"
            assert body["where"] == path.split("?")[0]
            assert "Authorization: Bearer" in body["hint"]
        else:
            assert response.headers["content-type"].startswith("text/html")
            assert "Token needed" in response.text
    assert not (home / "datasets").exists()  # the refused POSTs did nothing


@pytest.mark.parametrize(("method", "path"), [g for g in GATED if g[0] == "GET"])
def test_bearer_token_passes(gated: TestClient, method: str, path: str) -> None:
    response = gated.request(
        method, path, headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=False
    )
    assert response.status_code != 401
    assert response.status_code == (303 if path == "/" else 404 if "nothing" in path else 200)


def test_token_in_address_sets_a_cookie_and_drops_it(home: Path) -> None:
    with TestClient(create_app(token=TOKEN)) as browser:
        response = browser.get(f"/?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie  # the cookie holds a digest, not the token
        # The browser's cookie jar now holds it: pages, the API and static files pass.
        assert browser.get("/models").status_code == 200
        assert browser.get("/api/models").status_code == 200
        assert browser.get("/static/console.css").status_code == 200
        other = browser.get(f"/jobs/x?a=1&token={TOKEN}&b=2", follow_redirects=False)
        assert other.status_code == 303
        assert other.headers["location"] == "/jobs/x?a=1&b=2"
    with TestClient(create_app(token=TOKEN)) as stranger:
        wrong = stranger.get("/?token=nope", follow_redirects=False)
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        stranger.cookies.set(COOKIE, "0" * 64)
        assert stranger.get("/api/models").status_code == 401
        stranger.cookies.set(COOKIE, TOKEN)  # the token itself is not the cookie's value
        assert stranger.get("/api/models").status_code == 401
    with TestClient(create_app(token="another")) as other_console:
        other_console.cookies.set(COOKIE, cookie.split(";")[0].split("=", 1)[1])
        assert other_console.get("/api/models").status_code == 401


def test_no_token_means_no_gate(client: TestClient) -> None:
    assert client.get("/api/models").status_code == 200
    assert client.get("/?token=whatever", follow_redirects=False).headers["location"] == "/models"


# --- startup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_do_not_warn(host: str) -> None:
    assert is_loopback(host)
    lines = startup_lines(host, 8090, None)
    assert lines == [f"boxtune console at http://{host}:8090/"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_other_hosts_warn(host: str) -> None:
    assert not is_loopback(host)
    lines = startup_lines(host, 8090, None)
    assert len(lines) == 2
    assert lines[1].startswith(f"warning: --host {host} makes the console reachable")
    assert "--token" in lines[1] and "BOXTUNE_UI_TOKEN" in lines[1]


def test_startup_lines_with_a_token() -> None:
    lines = startup_lines("0.0.0.0", 8090, "abc")
    assert lines[0] == "boxtune console at http://localhost:8090/?token=abc"
    assert lines[1].startswith("warning:") and "--token" not in lines[1]


def test_cli_refuses_a_zero_upload_limit(capsys: pytest.CaptureFixture[str]) -> None:
    from boxtune.cli import build_parser

    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["ui", "--max-upload-mb", "0"])
    assert caught.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.token, args.max_upload_mb) == (
        "127.0.0.1",
        8090,
        None,
        512,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def test_cli_on_every_interface_warns_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    log_path = tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items() if k != "BOXTUNE_UI_TOKEN"}
    env.update(BOXTUNE_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "boxtune.cli", "ui", "--host", "0.0.0.0", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=2)
                break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["default"] == DEFAULT_MODEL
        output = log_path.read_text()
        assert f"boxtune console at http://localhost:{port}/\n" in output
        warning = next(line for line in output.splitlines() if line.startswith("warning:"))
        assert "--host 0.0.0.0" in warning and "--token" in warning
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

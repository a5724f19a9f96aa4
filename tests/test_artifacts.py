"""The artifact format: atomic writes, identical tarball, hash checks, safe extraction."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.fake_engine import FakeDetector

from boxtune import cache
from boxtune.artifacts import (
    MANIFEST_FILE,
    TARBALL_FILE,
    load_artifact,
    write_artifact,
    write_tarball,
)
from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.engines import get_engine
from boxtune.errors import BoxtuneWarning, ModelError
from boxtune.labels import LabelMap

SIZE = 128
LABELS = LabelMap.from_categories({2: "bolt", 9: "nut"})
EXPECTED_FILES = {
    "weights.safetensors", "model.onnx", "labels_info.json", "metrics.json", "history.json"
}  # fmt: skip


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), LABELS, image_size=SIZE)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory, detector):
    out = tmp_path_factory.mktemp("out") / "model"
    return write_artifact(
        detector,
        out,
        model_id=DEFAULT_MODEL_ID,
        hyperparameters={"epochs": "5", "learning_rate": 0.001},
        metrics={"mAP": 0.5, "mAP50": 0.9},
        history=[{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}],
    )


def test_layout_and_manifest(artifact_dir):
    names = {p.name for p in artifact_dir.iterdir()}
    assert names == EXPECTED_FILES | {MANIFEST_FILE, TARBALL_FILE}
    manifest = json.loads((artifact_dir / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == 1
    assert manifest["model_id"] == DEFAULT_MODEL_ID and manifest["engine"] == "torch"
    assert manifest["num_classes"] == 2 and manifest["image_size"] == SIZE
    assert manifest["hyperparameters"] == {"epochs": "5", "learning_rate": 0.001}
    assert {"torch", "python", "onnxruntime"} <= set(manifest["library_versions"])
    assert manifest["created_at"].endswith("+00:00")
    assert set(manifest["files"]) == EXPECTED_FILES
    for name, record in manifest["files"].items():
        data = (artifact_dir / name).read_bytes()
        assert record == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert json.loads((artifact_dir / "history.json").read_text())[1]["loss"] == 0.5
    assert not list(artifact_dir.parent.glob(".*"))  # no temp dirs left behind


def test_tarball_holds_the_same_files(artifact_dir):
    with tarfile.open(artifact_dir / TARBALL_FILE) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(EXPECTED_FILES | {MANIFEST_FILE})
        for member in members:
            assert member.mtime == 0 and member.uid == 0 and member.isfile()
            assert tar.extractfile(member).read() == (artifact_dir / member.name).read_bytes()


def test_tarball_is_deterministic(artifact_dir, tmp_path):
    names = sorted(EXPECTED_FILES | {MANIFEST_FILE})
    write_tarball(artifact_dir, names, tmp_path / "a.tar.gz")
    write_tarball(artifact_dir, list(reversed(names)), tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert (tmp_path / "a.tar.gz").read_bytes() == (artifact_dir / TARBALL_FILE).read_bytes()


@pytest.mark.parametrize("form", ["directory", "tarball", "directory with only the tarball"])
def test_load_artifact_from_each_form(artifact_dir, tmp_path, form):
    if form == "directory":
        location = artifact_dir
    elif form == "tarball":
        location = artifact_dir / TARBALL_FILE
    else:
        location = tmp_path / "job-output"
        location.mkdir()
        (location / TARBALL_FILE).write_bytes((artifact_dir / TARBALL_FILE).read_bytes())
    art = load_artifact(location)
    assert art.model_id == DEFAULT_MODEL_ID and art.engine == "torch"
    assert art.label_map == LABELS and art.image_size == SIZE and art.num_classes == 2
    assert art.metrics == {"mAP": 0.5, "mAP50": 0.9} and len(art.history) == 2


def test_tampered_file_is_named(artifact_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    labels = json.loads((copy / "labels_info.json").read_text())
    labels["labels"][0] = "evil"
    (copy / "labels_info.json").write_text(json.dumps(labels))
    with pytest.raises(ModelError, match=r"labels_info\.json does not match its sha256"):
        load_artifact(copy)
    (copy / "labels_info.json").write_bytes((artifact_dir / "labels_info.json").read_bytes())
    (copy / "weights.safetensors").unlink()
    with pytest.raises(ModelError, match=r"weights\.safetensors is missing"):
        load_artifact(copy)


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_unsafe_tarballs_are_refused_before_writing_anything(tmp_path, home, kind):
    member = tarfile.TarInfo(
        {"parent": "../escape.txt", "absolute": "/tmp/escape.txt"}.get(kind, "x")
    )
    data = b"pwned"
    if kind == "symlink":
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
        data = b""
    member.size = len(data)
    with pytest.raises(ModelError, match="unexpected entry"):
        load_artifact(_tar_with(tmp_path, member, data))
    assert not (tmp_path / "escape.txt").exists()
    assert cache.list_entries() == []
    assert not list((home / "artifacts").glob(".*.partial-*"))


def test_damaged_tarball_and_missing_paths(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ModelError, match="cannot read the archive"):
        load_artifact(bad)
    with pytest.raises(ModelError, match="artifact not found"):
        load_artifact(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither"):
        load_artifact(tmp_path / "empty")


def test_future_format_version_is_refused(artifact_dir, tmp_path):
    import shutil

    copy = tmp_path / "future"
    shutil.copytree(artifact_dir, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format_version"):
        load_artifact(copy)


def test_rewrite_replaces_an_artifact_but_not_foreign_files(detector, artifact_dir, tmp_path):
    import shutil

    target = tmp_path / "again"
    shutil.copytree(artifact_dir, target)
    write_artifact(detector, target, metrics={"mAP": 0.7})
    assert load_artifact(target).metrics == {"mAP": 0.7}
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a boxtune artifact"):
        write_artifact(detector, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_failed_export_leaves_nothing(tmp_path, detector):
    class Broken:
        label_map = LABELS
        image_size = SIZE
        model_id = DEFAULT_MODEL_ID

        def export(self, directory):
            (Path(directory) / "weights.safetensors").write_bytes(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_artifact(Broken(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_loaded_detector_and_runners_reproduce_predictions(detector, artifact_dir):
    engine = get_engine("torch")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (100, 150, 3), dtype=np.uint8) for _ in range(2)]
    expected = detector.runner("torch").predict(images)
    loaded = engine.load_detector(load_artifact(artifact_dir))
    assert loaded.label_map == LABELS and loaded.image_size == SIZE
    got = loaded.runner("torch").predict(images)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
    onnx = engine.load_runner(load_artifact(artifact_dir), backend="onnxruntime")
    assert type(onnx).__name__ == "OnnxRunner"
    for a, b in zip(expected, onnx.predict(images), strict=True):
        assert abs(len(a) - len(b)) <= 2 and np.abs(a.scores[:10] - b.scores[:10]).max() < 1e-4


def test_onnxruntime_falls_back_to_torch_without_model_onnx(artifact_dir, tmp_path):
    import shutil

    copy = tmp_path / "no-onnx"
    shutil.copytree(artifact_dir, copy)
    (copy / "model.onnx").unlink()
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"]["model.onnx"]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.warns(BoxtuneWarning, match="torch backend"):
        runner = get_engine("torch").load_runner(load_artifact(copy), backend="onnxruntime")
    assert type(runner).__name__ == "TorchRunner"
    # The engine's default backend falls back quietly (no model.onnx is not a mistake).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(get_engine("torch").load_runner(load_artifact(copy))).__name__ == "TorchRunner"


@pytest.fixture
def s3(monkeypatch):
    """A real S3 protocol server (moto) on 127.0.0.1 with an empty bucket ``models``."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {
            "BOXTUNE_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="models")
        yield endpoint
    finally:
        server.stop()


def test_s3_round_trip(detector, s3):
    """Write to and load from s3://."""
    write_artifact(detector, "s3://models/run1/model", metrics={"mAP": 0.25})
    art = load_artifact("s3://models/run1/model")
    assert art.metrics == {"mAP": 0.25} and art.label_map == LABELS
    tar_art = load_artifact("s3://models/run1/model/model.tar.gz")
    assert tar_art.model_id == DEFAULT_MODEL_ID


# A TensorFlow-like engine: its files are a SavedModel directory and a checkpoint directory.
NESTED_FILES = {
    "saved_model/saved_model.pb": b"graph",
    "saved_model/fingerprint.pb": b"fingerprint",
    "saved_model/variables/variables.index": b"index",
    "saved_model/variables/variables.data-00000-of-00001": bytes(range(256)) * 4,
    "checkpoint/checkpoint": b'model_checkpoint_path: "ckpt-1"\n',
    "checkpoint/ckpt-1.index": b"ckpt index",
    "checkpoint/ckpt-1.data-00000-of-00001": b"ckpt data",
}


class NestedDetector(FakeDetector):
    exported: list[str] | None = None  # what export returns (default: NESTED_FILES' names)

    def export(self, directory: Path) -> list[str]:
        for name, data in NESTED_FILES.items():
            path = Path(directory) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return list(NESTED_FILES) if self.exported is None else self.exported


@pytest.fixture
def nested_dir(tmp_path):
    return write_artifact(NestedDetector(LABELS, SIZE), tmp_path / "tf-model")


def _assert_nested_files(directory: Path) -> None:
    for name, data in NESTED_FILES.items():
        assert (directory / name).read_bytes() == data, name


def test_nested_names_are_in_the_manifest_and_the_tarball(nested_dir):
    manifest = json.loads((nested_dir / MANIFEST_FILE).read_text())
    expected = set(NESTED_FILES) | {"labels_info.json", "metrics.json", "history.json"}
    assert set(manifest["files"]) == expected
    for name, data in NESTED_FILES.items():
        record = manifest["files"][name]
        assert record == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with tarfile.open(nested_dir / TARBALL_FILE) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(expected | {MANIFEST_FILE})
        for member in members:
            assert member.isfile() and member.mtime == 0 and member.mode == 0o644
            assert tar.extractfile(member).read() == (nested_dir / member.name).read_bytes()
    assert not list(nested_dir.parent.glob(".*"))


@pytest.mark.parametrize("form", ["directory", "tarball", "directory with only the tarball"])
def test_nested_artifact_loads_from_each_form(nested_dir, tmp_path, home, form):
    if form == "directory":
        location = nested_dir
    elif form == "tarball":
        location = nested_dir / TARBALL_FILE
    else:
        location = tmp_path / "job-output"
        location.mkdir()
        (location / TARBALL_FILE).write_bytes((nested_dir / TARBALL_FILE).read_bytes())
    art = load_artifact(location)
    if form != "directory":
        assert art.directory.parent == home / "artifacts"
    assert art.label_map == LABELS and set(NESTED_FILES) <= set(art.files)
    _assert_nested_files(art.directory)


def test_nested_artifact_s3_round_trip(s3, home):
    write_artifact(NestedDetector(LABELS, SIZE), "s3://models/tf/model")
    for location in ("s3://models/tf/model", "s3://models/tf/model/model.tar.gz"):
        art = load_artifact(location)
        assert art.directory.is_relative_to(home) and art.label_map == LABELS
        _assert_nested_files(art.directory)


def test_tampered_nested_file_is_named(nested_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(nested_dir, copy)
    (copy / "saved_model/variables/variables.index").write_bytes(b"evil")
    with pytest.raises(ModelError, match=r"saved_model/variables/variables\.index does not match"):
        load_artifact(copy)
    shutil.rmtree(copy / "checkpoint")
    with pytest.raises(ModelError, match=r"checkpoint/checkpoint is missing"):
        load_artifact(copy)


def _tar_of(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def _files_under(root: Path) -> list[str]:
    """Files under ``root``, except the cache's lock files (bookkeeping, no content)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not p.is_dir() and ".locks" not in p.parts
    )


@pytest.mark.parametrize(
    "name", ["a/../../x", "/abs", "a/.hidden", "a//b", "..", "a/", "a\\b", "a/./b", "x" * 256]
)
def test_unsafe_nested_names_are_refused_before_writing_anything(tmp_path, home, name):
    valid = tarfile.TarInfo("saved_model/saved_model.pb")
    tarball = _tar_of(tmp_path, [(valid, b"ok"), (tarfile.TarInfo(name), b"pwned")])
    with pytest.raises(ModelError, match="unexpected entry"):
        load_artifact(tarball)
    assert _files_under(tmp_path) == ["evil.tar.gz"]  # not even the valid member


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_nested_links_and_devices_are_refused(tmp_path, home, kind):
    link = tarfile.TarInfo("saved_model/variables")
    link.type, link.linkname = kind, "../../../outside"
    payload = tarfile.TarInfo("saved_model/variables/variables.index")
    with pytest.raises(ModelError, match=r"unexpected entry .*not a regular file"):
        load_artifact(_tar_of(tmp_path, [(link, b""), (payload, b"pwned")]))
    assert _files_under(tmp_path) == ["evil.tar.gz"]


def test_duplicate_entries_are_refused(tmp_path, home):
    members = [(tarfile.TarInfo("a/b"), b"one"), (tarfile.TarInfo("a/b"), b"two")]
    with pytest.raises(ModelError, match="duplicate"):
        load_artifact(_tar_of(tmp_path, members))


def test_valid_directory_entries_are_accepted(nested_dir, tmp_path):
    with tarfile.open(nested_dir / TARBALL_FILE) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    empty = tarfile.TarInfo("saved_model/assets")
    empty.type = tarfile.DIRTYPE
    art = load_artifact(_tar_of(tmp_path, [(empty, b""), *members]))
    _assert_nested_files(art.directory)


@pytest.mark.parametrize("name", ["../x", "a/./b", "/abs/x", ".hidden", "a//b", "a\\b"])
def test_manifest_with_unsafe_names_is_refused(nested_dir, tmp_path, name):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(nested_dir, copy)
    (tmp_path / "x").write_bytes(b"outside")  # ../x exists, with the hash the manifest gives
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(b"outside").hexdigest(), "size": 7}
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="invalid file name") as info:
        load_artifact(copy)
    assert info.value.where == str(copy / MANIFEST_FILE)


@pytest.mark.parametrize(
    ("exported", "message"),
    [
        (["saved_model"], "not a file"),
        (["saved_model/../x"], "'..' component"),
        (["checkpoint/checkpoint", "checkpoint/checkpoint"], "duplicate"),
        ([MANIFEST_FILE], "writes itself"),
    ],
)
def test_export_with_bad_names_writes_no_artifact(tmp_path, exported, message):
    detector = NestedDetector(LABELS, SIZE)
    detector.exported = exported
    with pytest.raises(ModelError, match=message):
        write_artifact(detector, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_prefix_without_its_manifest_is_an_incomplete_upload(artifact_dir, s3):
    """What a writer that died mid-upload leaves: files, but not the manifest it writes last."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3)
    for name in ("weights.safetensors", "labels_info.json", "metrics.json"):
        client.upload_file(str(artifact_dir / name), "models", f"partial/{name}")
    with pytest.raises(ModelError) as info:
        load_artifact("s3://models/partial")
    message = str(info.value)
    assert "s3://models/partial holds artifact files but no boxtune-model.json" in message
    assert "its upload is incomplete" in message and "upload the artifact again" in message


def test_every_artifact_file_is_readable_by_other_users(artifact_dir):
    """A serving account other than the trainer's reads the artifact (safetensors writes 0600)."""
    modes = {p.name: p.stat().st_mode & 0o777 for p in artifact_dir.iterdir() if p.is_file()}
    mask = os.umask(0)
    os.umask(mask)
    assert modes == dict.fromkeys(modes, 0o666 & ~mask)

"""boxtune.storage against the local filesystem and a real S3-protocol server (moto)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.s3_server import S3Server, s3_bucket, s3_env, s3_server

from boxtune import storage
from boxtune.errors import BoxtuneError

__all__ = ["s3_bucket", "s3_env", "s3_server"]


@pytest.fixture(autouse=True)
def boxtune_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "annotations.json": b'{"images": [], "annotations": []}',
        "images/a.png": os.urandom(2048),
        "images/sub/b.jpg": os.urandom(100),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_is_remote_and_join():
    assert storage.is_remote("s3://bucket/key")
    assert not storage.is_remote("/tmp/x")
    assert not storage.is_remote("file:///tmp/x")
    assert storage.join("s3://b/prefix/", "job", "output") == "s3://b/prefix/job/output"
    assert storage.join("/tmp/out", "job") == str(Path("/tmp/out/job"))


def test_local_paths_pass_through_and_upload_copies(tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    assert storage.local_copy(src) == src
    assert storage.local_copy(f"file://{src}") == src

    storage.upload(src, str(tmp_path / "copy"))
    assert read_tree(tmp_path / "copy") == files
    storage.upload(src / "images/a.png", str(tmp_path / "one" / "a.png"))
    assert (tmp_path / "one/a.png").read_bytes() == files["images/a.png"]
    assert storage.exists(str(tmp_path / "one/a.png"))
    assert not storage.exists(str(tmp_path / "one/missing.png"))


def test_file_round_trip_through_s3(tmp_path, s3_env: S3Server, s3_bucket: str):
    payload = os.urandom(300_000)
    local = tmp_path / "model.tar.gz"
    local.write_bytes(payload)
    uri = f"s3://{s3_bucket}/jobs/j1/output/model.tar.gz"

    storage.upload(local, uri)

    assert s3_env.keys(s3_bucket) == ["jobs/j1/output/model.tar.gz"]
    assert storage.exists(uri)
    copy = storage.local_copy(uri, kind="artifact")
    assert copy.name == "model.tar.gz"
    assert copy.read_bytes() == payload
    assert str(copy).startswith(os.environ["BOXTUNE_HOME"])


def test_directory_round_trip_through_s3(tmp_path, s3_env: S3Server, s3_bucket: str):
    files = make_tree(tmp_path / "dataset")
    uri = f"s3://{s3_bucket}/datasets/toy"

    storage.upload(tmp_path / "dataset", uri)

    assert sorted(s3_env.keys(s3_bucket)) == sorted(f"datasets/toy/{k}" for k in files)
    for location in (uri, uri + "/"):
        copy = storage.local_copy(location)
        assert copy.is_dir()
        assert read_tree(copy) == files


def test_download_refreshes_when_the_remote_side_changes(tmp_path, s3_env, s3_bucket):
    (tmp_path / "v.txt").write_text("one")
    uri = f"s3://{s3_bucket}/v.txt"
    storage.upload(tmp_path / "v.txt", uri)
    assert storage.local_copy(uri).read_text() == "one"
    (tmp_path / "v.txt").write_text("two")
    storage.upload(tmp_path / "v.txt", uri)
    assert storage.local_copy(uri).read_text() == "two"


def test_missing_key_error_names_the_uri(s3_env, s3_bucket):
    uri = f"s3://{s3_bucket}/no/such/key.tar.gz"
    with pytest.raises(BoxtuneError) as info:
        storage.local_copy(uri)
    message = str(info.value)
    assert uri in message
    assert "does not exist" in message
    assert "hint:" in message


def test_missing_bucket_error_names_the_bucket(tmp_path, s3_env):
    with pytest.raises(BoxtuneError) as info:
        storage.local_copy("s3://no-such-bucket-xyz/data")
    assert "bucket 'no-such-bucket-xyz' does not exist" in str(info.value)

    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(BoxtuneError) as info:
        storage.upload(tmp_path / "f.txt", "s3://no-such-bucket-xyz/f.txt")
    assert "bucket 'no-such-bucket-xyz' does not exist" in str(info.value)
    assert "create it" in str(info.value)


def test_missing_local_source_is_a_clear_error(tmp_path):
    with pytest.raises(BoxtuneError) as info:
        storage.upload(tmp_path / "nothing-here", str(tmp_path / "dest"))
    assert "nothing-here" in str(info.value)


def test_unreachable_endpoint_is_a_clear_error(monkeypatch):
    from tests.s3_server import free_port

    monkeypatch.setenv("BOXTUNE_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(BoxtuneError) as info:
        storage.local_copy("s3://bucket/key")
    assert "BOXTUNE_S3_ENDPOINT_URL" in str(info.value)
    assert "does not exist" not in str(info.value)


def test_text_helpers_work_locally_and_on_s3(tmp_path, s3_env, s3_bucket):
    for base in (str(tmp_path), f"s3://{s3_bucket}/p"):
        uri = storage.join(base, "a", "notes.txt")
        storage.write_text(uri, "héllo")
        assert storage.read_text(uri) == "héllo"


def test_unchanged_remote_data_is_not_downloaded_again(tmp_path, s3_env, s3_bucket):
    make_tree(tmp_path / "d")
    uri = f"s3://{s3_bucket}/d"
    storage.upload(tmp_path / "d", uri)
    first = storage.local_copy(uri)
    marker = first / "images" / "a.png"
    stamp = marker.stat().st_mtime_ns
    second = storage.local_copy(uri)
    assert second == first and marker.stat().st_mtime_ns == stamp  # the cached copy is reused


def test_check_destination(tmp_path, s3_env, s3_bucket):
    storage.check_destination(str(tmp_path / "anything"))
    storage.check_destination(f"s3://{s3_bucket}/out")
    with pytest.raises(BoxtuneError, match="bucket 'missing-bucket-abc' does not exist"):
        storage.check_destination("s3://missing-bucket-abc/out")

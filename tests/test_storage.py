"""boxtune.storage against the local filesystem and a real S3-protocol server (moto)."""

from __future__ import annotations

import os
import time
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
    storage.check_destination(str(tmp_path / "anything" / "deeper"))
    assert list(tmp_path.iterdir()) == []  # checked where it would be created; nothing made
    storage.check_destination(f"s3://{s3_bucket}/out")
    assert s3_env.keys(s3_bucket) == []  # the probe object is deleted again
    with pytest.raises(BoxtuneError, match="bucket 'missing-bucket-abc' does not exist"):
        storage.check_destination("s3://missing-bucket-abc/out")
    buckets = [b["Name"] for b in s3_env.client().list_buckets()["Buckets"]]
    assert "missing-bucket-abc" not in buckets  # never created


def test_a_local_destination_under_a_file_is_refused(tmp_path):
    (tmp_path / "report.txt").write_text("not a folder")
    for target in (tmp_path / "report.txt", tmp_path / "report.txt" / "run"):
        with pytest.raises(BoxtuneError) as info:
            storage.check_destination(target)
        assert str(info.value) == (
            f"{target}: checking the output location is writable failed: a part of the path "
            "is a file, a directory was expected (Not a directory)\n"
            "hint: check each folder of the path exists and is a directory"
        )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_local_destination_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(BoxtuneError) as info:
            storage.check_destination(folder / "run")
    finally:
        folder.chmod(0o700)
    assert str(info.value).startswith(
        f"{folder / 'run'}: checking the output location is writable failed: permission denied"
    )


def test_an_unreachable_destination_fails_in_seconds(monkeypatch):
    from tests.s3_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("BOXTUNE_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    started = time.monotonic()
    with pytest.raises(BoxtuneError) as info:
        storage.check_destination("s3://bucket/out")
    assert time.monotonic() - started < 15
    assert str(info.value) == (
        f"s3://bucket/out: cannot reach the S3 server at {endpoint}: Could not connect to the "
        f'endpoint URL: "{endpoint}/bucket"\n'
        "hint: start the server, or fix BOXTUNE_S3_ENDPOINT_URL / AWS_ENDPOINT_URL (unset both "
        "for AWS S3); check the network"
    )


def test_a_directory_upload_replaces_the_last_files_after_everything_else(
    tmp_path, monkeypatch, s3_env, s3_bucket
):
    make_tree(tmp_path / "model")
    (tmp_path / "model" / "manifest.json").write_text("new")
    (tmp_path / "model" / "model.tar.gz").write_bytes(b"new tarball")
    uri = f"s3://{s3_bucket}/model"
    client = s3_env.client()
    for name in ("manifest.json", "model.tar.gz", "images/a.png"):  # an earlier upload's
        client.put_object(Bucket=s3_bucket, Key=f"model/{name}", Body=b"old")
    fs, _ = storage.filesystem(uri)
    puts: list[tuple[str, list[str]]] = []
    real_put = fs.put_file

    def put_file(lpath, rpath, *args, **kwargs):
        puts.append((rpath.rsplit("/model/", 1)[1], sorted(s3_env.keys(s3_bucket))))
        return real_put(lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(fs, "put_file", put_file)
    storage.upload(tmp_path / "model", uri, last=("model.tar.gz", "manifest.json"))

    assert [name for name, _ in puts] == [
        "annotations.json",
        "images/a.png",
        "images/sub/b.jpg",
        "model.tar.gz",
        "manifest.json",
    ]
    assert puts[0][1] == ["model/images/a.png"]  # the old last files went before anything
    assert read_tree(storage.local_copy(uri)) == read_tree(tmp_path / "model")


def test_a_local_directory_copy_drops_an_old_last_file_the_source_lacks(tmp_path):
    make_tree(tmp_path / "src")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "manifest.json").write_text("describes other files")
    storage.upload(tmp_path / "src", str(tmp_path / "dest"), last=("manifest.json",))
    assert read_tree(tmp_path / "dest") == read_tree(tmp_path / "src")

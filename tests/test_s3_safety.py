"""``s3://`` outputs against real moto servers: checked before training, uploaded in a safe order.

Each test reproduces a failure as it happens: a bucket that does not exist, keys the server
rejects, keys that may only read, and the S3 server process killed (SIGKILL) in the middle of
an upload. Training uses the scripted engine (tests/fake_engine.py), so only storage costs time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fake_engine import FakeEngine, install
from tests.s3_server import REGION, S3Server, s3_bucket, s3_env, s3_environment, s3_server

from boxtune import storage
from boxtune.artifacts import MANIFEST_FILE, TARBALL_FILE, load_artifact
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.data import generate_sample_dataset
from boxtune.errors import BoxtuneError
from boxtune.fileio import sha256_file
from boxtune.storage import IncompleteUploadError
from boxtune.train import train

__all__ = ["s3_bucket", "s3_env", "s3_server"]

HP = {"image_size": 64, "batch_size": 4, "epochs": 1, "augmentation": "False", "num_workers": 0}
CREDENTIALS_HINT = (
    "hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for "
    "temporary keys), or AWS_PROFILE, to keys this server accepts; for an S3-compatible "
    "server check BOXTUNE_S3_ENDPOINT_URL too"
)


@pytest.fixture(autouse=True)
def boxtune_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "boxtune-home"
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def fresh_s3_clients() -> Iterator[None]:
    """s3fs caches one filesystem per endpoint with the keys it first saw; these tests change
    the keys between calls, as a user fixing them would."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_sample_dataset(tmp_path_factory.mktemp("s3-safety") / "data", images=8, seed=5)


def run_train(monkeypatch, dataset: Path, output: str, **kwargs) -> tuple[FakeEngine, list[str]]:
    """Train with the scripted engine; raises what train() raises, the log lines kept."""
    engine = install(monkeypatch, FakeEngine())
    lines: list[str] = kwargs.pop("lines", [])
    train(DEFAULT_MODEL_ID, dataset, None, output, HP, log=lines.append, progress=False, **kwargs)
    return engine, lines


# -- the destination is checked before training -------------------------------------------------
def test_cli_with_a_missing_bucket_fails_in_seconds_before_training(
    s3_env: S3Server, dataset, boxtune_home
):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    uri = f"s3://{bucket}/runs/one"
    started = time.monotonic()
    command = ["boxtune.cli", "train", "--model-id", DEFAULT_MODEL_ID, "--quiet"]
    command += ["--training", str(dataset), "--output", uri]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seconds = time.monotonic() - started

    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"error: bucket '{bucket}' does not exist (while accessing {uri})\n"
        f"hint: create it first (`aws s3 mb s3://{bucket}`, or your S3 server's console) or fix "
        "the bucket name; with an S3-compatible server check BOXTUNE_S3_ENDPOINT_URL\n"
    )
    assert done.stdout == ""  # not one training log line
    assert seconds < 30, f"took {seconds:.1f} s (interpreter start included)"
    buckets = [b["Name"] for b in s3_env.client().list_buckets().get("Buckets", [])]
    assert bucket not in buckets  # never created
    assert not (boxtune_home / "runs").exists()  # nothing staged locally either


def test_missing_bucket_in_the_api_fails_before_the_model_is_built(monkeypatch, s3_env, dataset):
    engine = install(monkeypatch, FakeEngine())
    lines: list[str] = []
    with pytest.raises(BoxtuneError, match=r"^bucket 'no-such-bucket-q1' does not exist"):
        train(DEFAULT_MODEL_ID, dataset, None, "s3://no-such-bucket-q1/out", HP, log=lines.append)
    assert engine.create_calls == [] and lines == []


def test_a_local_output_under_a_file_fails_before_the_model_is_built(
    monkeypatch, dataset, tmp_path
):
    (tmp_path / "taken").write_text("a file")
    engine = install(monkeypatch, FakeEngine())
    with pytest.raises(BoxtuneError) as info:
        train(DEFAULT_MODEL_ID, dataset, None, tmp_path / "taken" / "run", HP, log=print)
    assert str(info.value).startswith(
        f"{tmp_path / 'taken' / 'run'}: checking the output location is writable failed: a "
        "part of the path is a file, a directory was expected"
    )
    assert engine.create_calls == []


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_evaluate_and_predict_check_the_output_before_the_model(command, s3_env, capsys):
    from boxtune.cli import main

    inputs = "--data" if command == "evaluate" else "--input"
    argv = [command, "--model", "/no/such/model", inputs, "/no/such/data"]
    assert main([*argv, "--output", "s3://no-such-bucket-e2/out"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: bucket 'no-such-bucket-e2' does not exist (while accessing "
        "s3://no-such-bucket-e2/out)\n"
    )


def _reset_auth(server: S3Server, count: str) -> None:
    """moto's switch for IAM authentication: after ``count`` requests every one is checked."""
    request = urllib.request.Request(
        f"{server.endpoint_url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def _user_with_keys(iam, name: str, actions: list[str]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


class AuthServer:
    """A moto server that checks keys and IAM policies, as AWS S3 does."""

    def __init__(self, server: S3Server, keys: dict[str, tuple[str, str]], bucket: str):
        self.server, self.keys, self.bucket = server, keys, bucket

    def use(self, monkeypatch, user: str) -> None:
        """Point boxtune at this server with ``user``'s keys (until the test ends)."""
        for name, value in self.server.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        key, secret = self.keys[user]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)

    def keys_under(self, prefix: str) -> list[str]:
        import boto3

        key, secret = self.keys["admin"]
        client = boto3.client(
            "s3",
            endpoint_url=self.server.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=REGION,
        )
        listing = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[AuthServer]:
    import boto3

    log = tmp_path_factory.mktemp("s3-auth") / "moto.log"
    with S3Server(log_path=log) as server:
        server.create_bucket("guarded")
        iam = boto3.client("iam", **_admin_client_args(server))
        keys = {
            "admin": _user_with_keys(iam, "admin", ["s3:*"]),
            "reader": _user_with_keys(iam, "reader", ["s3:ListBucket", "s3:GetObject"]),
            "no-delete": _user_with_keys(
                iam, "no-delete", ["s3:ListBucket", "s3:GetObject", "s3:PutObject"]
            ),
            "bad-secret": (_user_with_keys(iam, "typo", ["s3:*"])[0], "not-the-secret"),
            "unknown": ("AKIAUNKNOWNKEY000000", "whatever"),
        }
        _reset_auth(server, "0")
        try:
            yield AuthServer(server, keys, "guarded")
        finally:
            _reset_auth(server, "inf")


def _admin_client_args(server: S3Server) -> dict:
    env = server.environment()
    return {
        "endpoint_url": server.endpoint_url,
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": REGION,
    }


@pytest.mark.parametrize(
    ("user", "answer"),
    [
        (
            "unknown",
            "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
        ),
        (
            "bad-secret",
            "SignatureDoesNotMatch: The request signature we calculated does not match the "
            "signature you provided. Check your key and signing method.",
        ),
    ],
)
def test_rejected_credentials_fail_before_training(
    monkeypatch, auth_server: AuthServer, dataset, user, answer
):
    uri = f"s3://guarded/{user}/run"
    auth_server.use(monkeypatch, user)
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(BoxtuneError) as info:
        run_train(monkeypatch, dataset, uri, lines=lines)
    seconds = time.monotonic() - started
    assert str(info.value) == (
        f"{uri}: the S3 server at {auth_server.server.endpoint_url} rejected the credentials "
        f"({answer})\n{CREDENTIALS_HINT}"
    )
    assert lines == [] and seconds < 15
    assert auth_server.keys_under(f"{user}/") == []


def test_keys_that_may_only_read_fail_before_training(monkeypatch, auth_server, dataset):
    uri = "s3://guarded/reader/run"
    auth_server.use(monkeypatch, "reader")
    lines: list[str] = []
    with pytest.raises(BoxtuneError) as info:
        run_train(monkeypatch, dataset, uri, lines=lines)
    assert str(info.value) == (
        f"{uri}: the credentials in use may not write objects here: the S3 server at "
        f"{auth_server.server.endpoint_url} answered AccessDenied: Access Denied\n"
        f"hint: allow s3:PutObject and s3:DeleteObject on {uri}/* for these credentials "
        "(AWS_ACCESS_KEY_ID / AWS_PROFILE), use other credentials, or write somewhere else"
    )
    assert lines == []
    assert auth_server.keys_under("reader/") == []


def test_keys_that_may_write_but_not_delete_are_refused(monkeypatch, auth_server):
    # The upload deletes the old manifest before anything else: without that right an old
    # manifest could describe new files.
    uri = "s3://guarded/no-delete/run"
    auth_server.use(monkeypatch, "no-delete")
    with pytest.raises(BoxtuneError) as info:
        storage.check_destination(uri)
    (probe,) = auth_server.keys_under("no-delete/run/")
    assert probe.startswith("no-delete/run/.boxtune-write-check-")
    assert str(info.value).startswith(
        f"{uri}: the credentials in use may not delete objects here: the S3 server at "
        f"{auth_server.server.endpoint_url} answered AccessDenied: Access Denied; delete the "
        f"probe object s3://guarded/{probe} by hand\n"
    )


def test_working_keys_pass_and_leave_no_probe_behind(monkeypatch, auth_server):
    auth_server.use(monkeypatch, "admin")
    storage.check_destination("s3://guarded/admin/run")
    assert auth_server.keys_under("admin/") == []


# -- the S3 server dies in the middle of the upload ---------------------------------------------
def _kill_after(patch: pytest.MonkeyPatch, server: S3Server, files: int, bucket: str) -> dict:
    """Record every file upload and SIGKILL the server once ``files`` have finished; the
    result holds the uploads (``puts``) and what the server held at the kill (``at_kill``)."""
    seen: dict = {"puts": [], "at_kill": None}
    wrapped: set[int] = set()
    real_filesystem = storage.filesystem

    def filesystem(uri: str):
        fs, path = real_filesystem(uri)
        if id(fs) not in wrapped:  # one cached instance serves every call
            wrapped.add(id(fs))
            patch.setattr(fs, "put_file", _recording(fs.put_file, seen, files, server, bucket))
        return fs, path

    patch.setattr(storage, "filesystem", filesystem)
    return seen


def _recording(put_file, seen: dict, files: int, server: S3Server, bucket: str):
    def put_and_maybe_kill(lpath, rpath, *args, **kwargs):
        result = put_file(lpath, rpath, *args, **kwargs)
        seen["puts"].append(rpath)
        if len(seen["puts"]) == files:
            seen["at_kill"] = sorted(server.keys(bucket))
            server._process.send_signal(signal.SIGKILL)  # the real server process, at once
            server._process.wait(timeout=10)
        return result

    return put_and_maybe_kill


def _upload_order(work_dir: Path) -> list[str]:
    names = sorted(p.relative_to(work_dir).as_posix() for p in work_dir.rglob("*") if p.is_file())
    last = [TARBALL_FILE, MANIFEST_FILE]
    return [n for n in names if n not in last] + last


def _old_run_at(server: S3Server, bucket: str, prefix: str) -> None:
    """What an earlier run left at the prefix: a manifest the new files must not be read with."""
    client = server.client()
    for name in (MANIFEST_FILE, TARBALL_FILE, "fake-weights.json"):
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=b"from the earlier run")


def _assert_local_run_intact(work_dir: Path) -> None:
    artifact = load_artifact(work_dir)  # checks every hash the manifest lists
    for name, record in artifact.manifest["files"].items():
        assert sha256_file(work_dir / name) == record["sha256"]
    assert (work_dir / TARBALL_FILE).is_file()
    load_artifact(work_dir / TARBALL_FILE)


def _kill_mid_upload(tmp_path, dataset) -> tuple[IncompleteUploadError, dict]:
    """Train to an s3:// output whose server is killed after two files of the upload."""
    server = S3Server(log_path=tmp_path / "moto.log").start()
    try:
        with s3_environment(server), pytest.MonkeyPatch.context() as patch:
            server.create_bucket("models")
            _old_run_at(server, "models", "detector")
            seen = _kill_after(patch, server, 2, "models")
            with pytest.raises(IncompleteUploadError) as info:
                run_train(patch, dataset, "s3://models/detector")
    finally:
        server.stop()
    return info.value, {**seen, "endpoint": server.endpoint_url}


def test_a_server_killed_mid_upload_leaves_no_manifest_and_loses_nothing(
    tmp_path, dataset, boxtune_home
):
    error, seen = _kill_mid_upload(tmp_path, dataset)
    uri, endpoint, work_dir = "s3://models/detector", seen["endpoint"], error.local_dir
    order = _upload_order(work_dir)

    assert seen["puts"] == [f"models/detector/{name}" for name in order[:2]]
    # The server's last state: the two new files, the earlier run's weights, and neither the
    # old manifest nor the old tarball (deleted before the first file went up).
    assert seen["at_kill"] == sorted(
        [f"detector/{name}" for name in order[:2]] + ["detector/fake-weights.json"]
    )
    assert str(error) == (
        f"{uri}: the upload stopped after 2 of {len(order)} files (Could not connect to the "
        f'endpoint URL: "{endpoint}/models/detector/{order[2]}"): the prefix is incomplete '
        f"and holds no {TARBALL_FILE} or {MANIFEST_FILE}; the complete local copy is in "
        f"{work_dir}\n"
        "hint: rerun the same training command with --resume (resume=True): it picks the "
        "finished run up from its checkpoints and uploads it again; or upload it again once "
        f"the destination works: aws --endpoint-url {endpoint} s3 sync {work_dir} {uri} "
        f"--exclude {TARBALL_FILE} --exclude {MANIFEST_FILE} && aws --endpoint-url {endpoint} "
        f"s3 cp {work_dir / TARBALL_FILE} {uri}/{TARBALL_FILE} && aws --endpoint-url "
        f"{endpoint} s3 cp {work_dir / MANIFEST_FILE} {uri}/{MANIFEST_FILE}"
    )
    assert work_dir.parent == boxtune_home / "runs"
    _assert_local_run_intact(work_dir)


def test_resume_after_the_server_is_back_uploads_everything_with_the_manifest_last(
    monkeypatch, tmp_path, dataset
):
    error, _ = _kill_mid_upload(tmp_path, dataset)
    work_dir = error.local_dir
    uri = "s3://models/detector"
    with S3Server(log_path=tmp_path / "moto-again.log") as server, s3_environment(server):
        server.create_bucket("models")
        puts = _kill_after(monkeypatch, server, 10_000, "models")["puts"]  # records only
        lines: list[str] = []
        run_train(monkeypatch, dataset, uri, resume=True, lines=lines)
        keys = server.keys("models")
        remote = load_artifact(f"{uri}/{TARBALL_FILE}")

    order = _upload_order(work_dir)
    assert puts == [f"models/detector/{name}" for name in order]  # the manifest last
    assert sorted(keys) == sorted(f"detector/{name}" for name in order)
    assert not any("[Epoch" in line for line in lines)  # a finished run is not trained again
    assert remote.manifest["files"] == load_artifact(work_dir).manifest["files"]
    assert not [p for p in work_dir.iterdir() if "staging" in p.name]

"""Local paths and fsspec URIs (``s3://`` first) behind one small API.

S3 endpoints: ``BOXTUNE_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) selects any S3-compatible
server; credentials and region come from the standard AWS variables.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from boxtune.errors import BoxtuneError
from boxtune.paths import boxtune_home


def is_remote(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def _storage_options(uri: str) -> dict:
    if uri.startswith("s3://"):
        endpoint = os.environ.get("BOXTUNE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return {}


def filesystem(uri: str):
    """The fsspec filesystem for ``uri`` and the path inside it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **_storage_options(uri))
    return fs, path


def _remote_error(uri: str, exc: Exception, action: str) -> BoxtuneError:
    return BoxtuneError(
        f"cannot {action} {uri}: {exc}",
        hint="check the URI, BOXTUNE_S3_ENDPOINT_URL and your AWS credentials "
        "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    )


def local_copy(location: str | os.PathLike, kind: str = "data") -> Path:
    """A local path holding ``location``: local paths as they are, remote ones downloaded.

    Remote copies land in ``BOXTUNE_HOME/downloads/<kind>/<hash of uri>`` and are refreshed on
    every call (the remote side may have changed); the download goes to a temp dir first.
    """
    location = str(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if not is_remote(location):
        return Path(location).expanduser()
    fs, path = filesystem(location)
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    target = boxtune_home() / "downloads" / kind / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
    try:
        if not fs.exists(path):
            raise BoxtuneError(
                f"{location} does not exist", hint="check the bucket and prefix (list it with "
                "`aws s3 ls` or your S3 client)"
            )
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(tmp), recursive=True)
            result = target
        else:
            fs.get(path, str(tmp / Path(path).name))
            result = target / Path(path).name
    except BoxtuneError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:  # network / permission errors from the S3 client
        shutil.rmtree(tmp, ignore_errors=True)
        raise _remote_error(location, exc, "download") from exc
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return result


def upload(local_path: str | os.PathLike, uri: str) -> None:
    """Copy a local file or directory to ``uri`` (a local path works too)."""
    local_path = Path(local_path)
    if not is_remote(uri):
        dest = Path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if local_path.is_dir():
            shutil.copytree(local_path, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(local_path, dest)
        return
    fs, path = filesystem(uri)
    try:
        if local_path.is_dir():
            fs.put(str(local_path).rstrip("/") + "/", path.rstrip("/"), recursive=True)
        else:
            fs.put(str(local_path), path)
    except Exception as exc:
        raise _remote_error(uri, exc, "upload to") from exc

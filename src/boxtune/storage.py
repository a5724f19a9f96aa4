"""Local paths and fsspec URIs (``s3://`` first) behind one small API.

S3 endpoints: ``BOXTUNE_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) selects any S3-compatible
server; credentials and region come from the standard AWS variables.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from boxtune import fileio
from boxtune.errors import BoxtuneError
from boxtune.paths import boxtune_home

_CREDENTIALS_HINT = (
    "check the URI, BOXTUNE_S3_ENDPOINT_URL (for S3-compatible servers) and your AWS "
    "credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE)"
)


def is_remote(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def _strip_file_scheme(location: str | os.PathLike) -> str:
    location = str(location)
    return location[len("file://") :] if location.startswith("file://") else location


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base`` joined with ``parts``: ``/`` for URIs, the OS separator for local paths."""
    base = str(base)
    if is_remote(base):
        pieces = [base.rstrip("/")] + [p.strip("/") for p in parts if p]
        return "/".join(pieces)
    return str(Path(_strip_file_scheme(base)).expanduser().joinpath(*parts))


def _storage_options(uri: str) -> dict:
    if uri.startswith("s3://"):
        # Listings are not cached: other processes (training jobs) write to the same prefixes.
        # Few botocore retries: s3fs retries connection errors itself, and a wrong endpoint
        # should fail in seconds, not minutes.
        options: dict = {
            "use_listings_cache": False,
            "config_kwargs": {
                "retries": {"max_attempts": 2, "mode": "standard"},
                "connect_timeout": 10,
            },
        }
        endpoint = os.environ.get("BOXTUNE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        return options
    return {}


def filesystem(uri: str):
    """The fsspec filesystem for ``uri`` and the path inside it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **_storage_options(uri))
    return fs, path


def _bucket_of(uri: str) -> str | None:
    if not uri.startswith("s3://"):
        return None
    return uri[len("s3://") :].split("/", 1)[0]


def _bucket_exists(fs, bucket: str) -> bool | None:
    """True/False when the server answers, None when it cannot be asked (unreachable, denied)."""
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
        return True
    except FileNotFoundError:
        return False
    except Exception:
        return None


def _missing_bucket_error(uri: str, bucket: str) -> BoxtuneError:
    return BoxtuneError(
        f"bucket '{bucket}' does not exist (while accessing {uri})",
        hint=f"create it first (`aws s3 mb s3://{bucket}`, or your S3 server's console) or fix "
        "the bucket name; with an S3-compatible server check BOXTUNE_S3_ENDPOINT_URL",
    )


def _remote_error(uri: str, exc: Exception, action: str, fs=None) -> BoxtuneError:
    bucket = _bucket_of(uri)
    if fs is not None and bucket and _bucket_exists(fs, bucket) is False:
        return _missing_bucket_error(uri, bucket)
    reason = str(exc) or type(exc).__name__
    endpoint = _storage_options(uri).get("client_kwargs", {}).get("endpoint_url")
    via = f" (endpoint {endpoint})" if endpoint else ""
    return BoxtuneError(f"cannot {action} {uri}{via}: {reason}", hint=_CREDENTIALS_HINT)


def exists(location: str | os.PathLike) -> bool:
    location = _strip_file_scheme(location)
    if not is_remote(location):
        return Path(location).expanduser().exists()
    fs, path = filesystem(location)
    try:
        fs.info(path)
        return True
    except FileNotFoundError:
        return False
    except Exception as exc:
        raise _remote_error(location, exc, "look up", fs) from exc


def check_destination(location: str | os.PathLike) -> None:
    """Fail early (before hours of training) when an ``s3://`` destination's bucket is missing.

    Local destinations are created when written. A bucket that cannot be checked (no
    permission to list it) passes: writing may still be allowed.
    """
    location = _strip_file_scheme(location)
    bucket = _bucket_of(location)
    if not bucket:
        return
    fs, _ = filesystem(location)
    if _bucket_exists(fs, bucket) is False:
        raise _missing_bucket_error(location, bucket)


def _remote_manifest(fs, path: str) -> dict[str, list]:
    """Size and ETag of every object under ``path``: tells whether a cached copy is current."""
    found = fs.find(path, detail=True)
    return {
        name: [info.get("size"), str(info.get("ETag") or info.get("mtime") or "")]
        for name, info in sorted(found.items())
    }


def local_copy(location: str | os.PathLike, kind: str = "data") -> Path:
    """A local path holding ``location``: local paths as they are, remote ones downloaded.

    Remote copies land in ``BOXTUNE_HOME/downloads/<kind>/<hash of uri>``; a copy is reused
    only while the remote objects keep the same sizes and ETags, otherwise it is downloaded
    again (into a temp dir first, then renamed into place).
    """
    location = _strip_file_scheme(location)
    if not is_remote(location):
        return Path(location).expanduser()
    fs, path = filesystem(location)
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    target = boxtune_home() / "downloads" / kind / digest
    record = target.parent / f"{digest}.source.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            is_dir = fs.info(path)["type"] == "directory"
        except FileNotFoundError:
            bucket = _bucket_of(location)
            if bucket and _bucket_exists(fs, bucket) is False:
                raise _missing_bucket_error(location, bucket) from None
            raise BoxtuneError(
                f"{location} does not exist",
                hint="check the bucket and prefix (list it with `aws s3 ls` or your S3 client)",
            ) from None
        manifest = _remote_manifest(fs, path) if is_dir else {path: [fs.size(path), ""]}
        if not is_dir:
            manifest[path][1] = str(fs.info(path).get("ETag") or "")
        result = target if is_dir else target / Path(path).name
        if result.exists() and record.exists():
            cached = json.loads(record.read_text())
            if cached == {"uri": location, "objects": manifest}:
                return result
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
        try:
            if is_dir:
                fs.get(path.rstrip("/") + "/", str(tmp), recursive=True)
            else:
                fs.get(path, str(tmp / Path(path).name))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except BoxtuneError:
        raise
    except Exception as exc:  # network / permission errors from the S3 client
        raise _remote_error(location, exc, "download", fs) from exc
    fileio.replace_directory(tmp, target)
    fileio.atomic_write_text(record, json.dumps({"uri": location, "objects": manifest}))
    return result


def _copy_file_atomically(src: Path, dest: Path) -> None:
    with fileio.atomic_path(dest) as tmp:
        shutil.copy2(src, tmp)


def upload(local_path: str | os.PathLike, uri: str) -> None:
    """Copy a local file or directory to ``uri`` (a local path works too).

    A directory lands as ``uri/<relative paths>``; each file appears whole or not at all.
    """
    local_path = Path(_strip_file_scheme(local_path)).expanduser()
    if not local_path.exists():
        raise BoxtuneError(
            f"{local_path} does not exist", hint="nothing to upload: check the local path"
        )
    uri = _strip_file_scheme(uri)
    if not is_remote(uri):
        dest = Path(uri).expanduser()
        if local_path.is_dir():
            for src in sorted(p for p in local_path.rglob("*") if p.is_file()):
                _copy_file_atomically(src, dest / src.relative_to(local_path))
        else:
            _copy_file_atomically(local_path, dest)
        return
    fs, path = filesystem(uri)
    try:
        if local_path.is_dir():
            fs.put(str(local_path).rstrip("/") + "/", path.rstrip("/"), recursive=True)
        else:
            fs.put(str(local_path), path)
    except Exception as exc:
        raise _remote_error(uri, exc, "upload to", fs) from exc


def read_bytes(location: str | os.PathLike) -> bytes:
    location = _strip_file_scheme(location)
    if not is_remote(location):
        try:
            return Path(location).expanduser().read_bytes()
        except FileNotFoundError as exc:
            raise BoxtuneError(f"{location} does not exist", hint="check the path") from exc
    return local_copy(location).read_bytes()


def read_text(location: str | os.PathLike) -> str:
    return read_bytes(location).decode("utf-8")


def write_bytes(location: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a local path (atomically) or a remote object."""
    location = _strip_file_scheme(location)
    if not is_remote(location):
        fileio.atomic_write_bytes(Path(location).expanduser(), data)
        return
    fs, path = filesystem(location)
    try:
        fs.pipe_file(path, data)
    except Exception as exc:
        raise _remote_error(location, exc, "write", fs) from exc


def write_text(location: str | os.PathLike, text: str) -> None:
    write_bytes(location, text.encode("utf-8"))

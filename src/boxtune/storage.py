"""Local paths and fsspec URIs (``s3://`` first) behind one small API.

S3 endpoints: ``BOXTUNE_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) selects any S3-compatible
server; credentials and region come from the standard AWS variables.

The bucket ``boxtune-local`` is a folder on this machine (``BOXTUNE_LOCAL_BUCKET_DIR``, default
``BOXTUNE_HOME/local-bucket``): it is the SDK's ``Session().default_bucket()`` unless
``BOXTUNE_DEFAULT_BUCKET`` names a real one, so notebook code that writes its outputs under
``s3://<default bucket>/...`` works without any S3 server. Every function here maps it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from boxtune import fileio
from boxtune.errors import BoxtuneError, os_error
from boxtune.paths import boxtune_home

_CREDENTIALS_HINT = (
    "check the URI, BOXTUNE_S3_ENDPOINT_URL (for S3-compatible servers) and your AWS "
    "credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE)"
)


LOCAL_BUCKET = "boxtune-local"
LOCAL_BUCKET_DIR_ENV = "BOXTUNE_LOCAL_BUCKET_DIR"
DEFAULT_BUCKET_ENV = "BOXTUNE_DEFAULT_BUCKET"


def default_bucket() -> str:
    """``BOXTUNE_DEFAULT_BUCKET`` (an existing bucket on the S3 server), else the local one."""
    return os.environ.get(DEFAULT_BUCKET_ENV) or LOCAL_BUCKET


def local_bucket_root() -> Path:
    configured = os.environ.get(LOCAL_BUCKET_DIR_ENV)
    return Path(configured).expanduser() if configured else boxtune_home() / "local-bucket"


def is_remote(location: str | os.PathLike) -> bool:
    """A URI (``s3://``, ``gs://``, ...; ``s3://boxtune-local/...`` too: callers treat it like
    any URI and this module maps it to its folder); not a path or a ``file://`` URI."""
    return "://" in str(location) and not str(location).startswith("file://")


def _strip_file_scheme(location: str | os.PathLike) -> str:
    """``location`` as this module reads it: ``file://`` dropped, the local bucket mapped."""
    location = str(location)
    if location.startswith("file://"):
        return location[len("file://") :]
    local = f"s3://{LOCAL_BUCKET}"
    if location == local or location.startswith(local + "/"):
        key = location[len(local) :].strip("/")
        return str(local_bucket_root() / key) if key else str(local_bucket_root())
    return location


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

    uri = _strip_file_scheme(uri)
    fs, path = fsspec.core.url_to_fs(uri, **_storage_options(uri))
    return fs, path


def _bucket_of(uri: str) -> str | None:
    if not uri.startswith("s3://"):
        return None
    return uri[len("s3://") :].split("/", 1)[0]


def _bucket_exists(fs, bucket: str) -> bool | None:
    """True/False when the server answers, None when it cannot be asked (unreachable, denied)."""
    try:
        return _head_bucket(fs, bucket)
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


# The probe object check_destination writes (and deletes) under a destination.
WRITE_CHECK_PREFIX = ".boxtune-write-check-"

# S3 error codes that mean the keys themselves are wrong, not what they may do.
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
        "NoCredentialsError",
        "PartialCredentialsError",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})
# check_destination's steps, as its messages name them.
_CHECK_STEPS = {
    "check": "looking up the bucket",
    "write": "writing a probe object",
    "delete": "deleting the probe object",
}


def check_destination(location: str | os.PathLike) -> None:
    """Fail in seconds, before hours of work, when ``location`` cannot receive the output.

    ``s3://``: the bucket exists (it is never created), the server accepts the credentials,
    and a probe object under the prefix can be written and deleted (an upload deletes the old
    manifest first, so both are needed). Local: the directory can be written, or created where
    it does not exist yet. Nothing is created and the probes are deleted.
    """
    location = _strip_file_scheme(location)
    if is_remote(location):
        _check_remote_destination(location)
    else:
        _check_local_destination(Path(location).expanduser())


def _check_local_destination(directory: Path) -> None:
    """Probe ``directory``, or the nearest folder above it that exists (where it would be
    created), with a file that is deleted at once: the check leaves nothing behind."""
    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        probe = existing / f"{WRITE_CHECK_PREFIX}{secrets.token_hex(6)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise os_error(
            exc, action="checking the output location is writable", path=directory
        ) from exc


def _check_remote_destination(uri: str) -> None:
    fs, path = filesystem(uri)
    bucket = _bucket_of(uri)
    probe = f"{path.rstrip('/')}/{WRITE_CHECK_PREFIX}{secrets.token_hex(6)}"
    doing = "check"
    try:
        # A bucket the keys may not HEAD (403) can still be writable: the probe decides.
        if bucket and _head_bucket(fs, bucket) is False:
            raise _missing_bucket_error(uri, bucket)
        doing = "write"
        fs.pipe_file(probe, b"boxtune checks this prefix is writable; safe to delete\n")
        doing = "delete"
        fs.rm_file(probe)
    except BoxtuneError:
        raise
    except Exception as exc:
        raise _destination_error(uri, exc, doing, probe) from exc


def _head_bucket(fs, bucket: str) -> bool | None:
    """True/False as the server answers; None when it refuses to say (403)."""
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
        return True
    except FileNotFoundError:
        return False
    except PermissionError:
        return None


def _server_answer(exc: BaseException) -> tuple[str, str]:
    """The S3 error code and message behind ``exc`` (s3fs wraps botocore's ClientError)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        error = response.get("Error") if isinstance(response, dict) else None
        if error:
            return str(error.get("Code") or ""), str(error.get("Message") or "")
        if type(seen).__name__ in _CREDENTIAL_CODES:
            return type(seen).__name__, str(seen)
        seen = seen.__cause__ or seen.__context__
    return "", str(exc) or type(exc).__name__


def _is_connection_error(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # another fsspec backend: only the builtin errors
        return isinstance(exc, ConnectionError | TimeoutError)
    return isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError)


def _endpoint(uri: str) -> str:
    configured = _storage_options(uri).get("client_kwargs", {}).get("endpoint_url")
    return configured or "the default AWS S3 endpoint"


def _destination_error(uri: str, exc: Exception, doing: str, probe: str) -> BoxtuneError:
    code, said = _server_answer(exc)
    answer = f"{code}: {said}" if code and said and code != said else (said or code)
    endpoint = _endpoint(uri)
    if code in _CREDENTIAL_CODES:
        return BoxtuneError(
            f"the S3 server at {endpoint} rejected the credentials ({answer})",
            where=uri,
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for "
            "temporary keys), or AWS_PROFILE, to keys this server accepts; for an "
            "S3-compatible server check BOXTUNE_S3_ENDPOINT_URL too",
        )
    if code == "NoSuchBucket":
        bucket = _bucket_of(uri) or uri
        return _missing_bucket_error(uri, bucket)
    if code in _DENIED_CODES or isinstance(exc, PermissionError):
        leftover = f"; delete the probe object s3://{probe} by hand" if doing == "delete" else ""
        return BoxtuneError(
            f"the credentials in use may not {doing} objects here: the S3 server at {endpoint} "
            f"answered {answer}{leftover}",
            where=uri,
            hint=f"allow s3:PutObject and s3:DeleteObject on {uri.rstrip('/')}/* for these "
            "credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE), use other credentials, or write "
            "somewhere else",
        )
    if _is_connection_error(exc):
        return BoxtuneError(
            f"cannot reach the S3 server at {endpoint}: {said}",
            where=uri,
            hint="start the server, or fix BOXTUNE_S3_ENDPOINT_URL / AWS_ENDPOINT_URL (unset "
            "both for AWS S3); check the network",
        )
    return BoxtuneError(
        f"{_CHECK_STEPS[doing]} failed: the S3 server at {endpoint} answered {answer}",
        where=uri,
        hint=_CREDENTIALS_HINT,
    )


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
    # Processes fetching the same URI at once (serve workers, jobs) take turns: the first
    # downloads, the others then find its copy current; nobody replaces a copy being read.
    with fileio.FileLock(target.parent / ".locks" / f"{digest}.lock"):
        return _fetch(fs, location, path, target, record)


def _fetch(fs, location: str, path: str, target: Path, record: Path) -> Path:
    digest = target.name
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
        for stale in target.parent.glob(f".{digest}.partial-*"):  # a killed download
            fileio.remove_path(stale)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{digest}.partial-"))
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
    record.unlink(missing_ok=True)  # the record describes the copy that is there
    fileio.replace_directory(tmp, target)
    fileio.atomic_write_text(record, json.dumps({"uri": location, "objects": manifest}))
    return result


def _copy_file_atomically(src: Path, dest: Path) -> None:
    with fileio.atomic_path(dest) as tmp:
        shutil.copy2(src, tmp)


class IncompleteUploadError(BoxtuneError):
    """A directory upload that stopped part way: the destination lacks the files meant to go
    last (the manifest), so no reader takes it for a whole copy; the local copy is intact."""

    def __init__(
        self,
        uri: str,
        local_dir: Path,
        *,
        done: int,
        total: int,
        missing: Sequence[str],
        reason: str,
        retry: str | None = None,
    ):
        self.uri, self.local_dir, self.done, self.total = uri, local_dir, done, total
        self.missing, self.reason = tuple(missing), reason
        holds_no = f" and holds no {' or '.join(missing)}" if missing else ""
        command = _manual_upload_command(local_dir, uri, missing)
        super().__init__(
            f"the upload stopped after {done} of {total} files ({reason}): the prefix is "
            f"incomplete{holds_no}; the complete local copy is in {local_dir}",
            where=uri,
            hint=(f"{retry}; or " if retry else "")
            + f"upload it again once the destination works: {command}",
        )

    def with_retry(self, retry: str) -> IncompleteUploadError:
        """The same error whose hint first names the caller's own way to retry."""
        return IncompleteUploadError(
            self.uri,
            self.local_dir,
            done=self.done,
            total=self.total,
            missing=self.missing,
            reason=self.reason,
            retry=retry,
        )


def _manual_upload_command(local_dir: Path, uri: str, last: Sequence[str]) -> str:
    """An ``aws`` command line that uploads in the same safe order (the ``last`` names after)."""
    endpoint = _storage_options(uri).get("client_kwargs", {}).get("endpoint_url")
    flag = f" --endpoint-url {endpoint}" if endpoint and uri.startswith("s3://") else ""
    base = uri.rstrip("/")
    excludes = "".join(f" --exclude {shlex.quote(name)}" for name in last)
    steps = [f"aws{flag} s3 sync {shlex.quote(str(local_dir))} {shlex.quote(base)}{excludes}"]
    steps += [
        f"aws{flag} s3 cp {shlex.quote(str(local_dir / name))} {shlex.quote(f'{base}/{name}')}"
        for name in last
    ]
    return " && ".join(steps)


def _upload_order(local_dir: Path, last: Sequence[str]) -> list[str]:
    """Relative paths of the files under ``local_dir``: sorted, the ``last`` ones at the end."""
    names = sorted(p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file())
    present = set(names)
    return [n for n in names if n not in last] + [n for n in last if n in present]


def upload(local_path: str | os.PathLike, uri: str, *, last: Sequence[str] = ()) -> None:
    """Copy a local file or directory to ``uri`` (a local path works too).

    A directory lands as ``uri/<relative paths>``, one whole file at a time. ``last`` names
    files of the directory (relative paths) whose old copies at ``uri`` are deleted first and
    that are uploaded after every other file, in that order: give the manifest last, and
    whoever finds it at ``uri`` finds every file it describes. A directory upload that fails
    part way raises :class:`IncompleteUploadError` (the local files stay where they are).
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
            for name in last:
                fileio.remove_path(dest / name)
            for name in _upload_order(local_path, last):
                _copy_file_atomically(local_path / name, dest / name)
        else:
            _copy_file_atomically(local_path, dest)
        return
    fs, path = filesystem(uri)
    if local_path.is_dir():
        _upload_directory(fs, local_path, uri, path.rstrip("/"), last)
        return
    try:
        fs.put(str(local_path), path)
    except Exception as exc:
        raise _remote_error(uri, exc, "upload to", fs) from exc


def _upload_directory(fs, local_dir: Path, uri: str, path: str, last: Sequence[str]) -> None:
    names = _upload_order(local_dir, last)
    done = 0
    try:
        for name in last:  # an old manifest must never describe the new files
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{path}/{name}")
        for name in names:
            fs.put_file(str(local_dir / name), f"{path}/{name}")
            done += 1
    except Exception as exc:
        bucket = _bucket_of(uri)
        if done == 0 and bucket and _bucket_exists(fs, bucket) is False:
            raise _missing_bucket_error(uri, bucket) from exc
        code, said = _server_answer(exc)
        uploaded = set(names[:done])
        raise IncompleteUploadError(
            uri,
            local_dir,
            done=done,
            total=len(names),
            missing=[n for n in last if n not in uploaded],
            reason=f"{code}: {said}" if code and code != said else said,
        ) from exc


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


def list_files(location: str | os.PathLike) -> list[str]:
    """The files under ``location`` (a file itself, or everything below a prefix), sorted URIs
    (paths for local locations)."""
    resolved = _strip_file_scheme(location)
    if not is_remote(resolved):
        root = Path(resolved).expanduser()
        if root.is_file():
            return [str(location)]
        found = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        return [join(str(location), str(p.relative_to(root))) for p in found]
    fs, path = filesystem(resolved)
    try:
        names = sorted(fs.find(path))
    except Exception as exc:
        raise _remote_error(resolved, exc, "list", fs) from exc
    scheme = resolved.split("://", 1)[0]
    return [f"{scheme}://{name}" for name in names]


def download(location: str | os.PathLike, directory: Path) -> list[Path]:
    """Copy the files under ``location`` into ``directory`` (relative paths kept)."""
    root = local_copy(location)
    directory = Path(directory).expanduser()
    if root.is_file():
        _copy_file_atomically(root, directory / root.name)
        return [directory / root.name]
    copied = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = directory / path.relative_to(root)
        _copy_file_atomically(path, target)
        copied.append(target)
    return copied

"""Finding a model's pretrained weights: package resource, explicit path/URI, cache, download.

Downloads happen only when asked for (never at import), land in ``BOXTUNE_HOME/weights`` via a
temp file that is renamed once its sha256 matches, and fail offline with a message that says
where to put the file by hand. ``BOXTUNE_OFFLINE=1`` forbids downloads altogether. A spec with
no published sha256 (``""``) has the hash of its first file recorded and checked later (trust on
first use; the TF2 zoo and TF Hub tarballs, see :mod:`boxtune.catalog.zoo_weights`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from boxtune.catalog.spec import ModelSpec, WeightsSource
from boxtune.catalog.tarballs import checked_sha256, remember
from boxtune.errors import ModelError
from boxtune.fileio import DownloadError, download, sha256_file, sha256_matches
from boxtune.paths import boxtune_home
from boxtune.storage import is_remote, local_copy

_DOWNLOAD_TIMEOUT_S = 30
# Hashes already verified in this process, keyed by (path, size, mtime): verifying a 100 MB file
# on every model build would cost seconds.
_verified: set[tuple[str, int, int]] = set()


def cached_weights_path(spec: ModelSpec) -> Path:
    """Where the downloaded (or hand-placed) weights file of ``spec`` lives."""
    return boxtune_home() / "weights" / spec.weights.file_name


def verify_sha256(path: Path, expected: str, *, what: str) -> None:
    """``expected`` may be a prefix of the hex digest (torchvision publishes 8 digits)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    actual = sha256_file(path)
    if not sha256_matches(actual, expected):
        raise ModelError(
            f"sha256 mismatch for {what}: expected {expected}…, got {actual}",
            where=str(path),
            hint="the file is corrupt or not the published weights; delete it and download "
            "it again",
        )
    _verified.add(key)


def _verify(path: Path, spec: ModelSpec, what: str) -> None:
    if spec.weights.sha256:
        verify_sha256(path, spec.weights.sha256, what=what)
    else:
        remember(path, checked_sha256(path, what=what))


def _package_resource(source: WeightsSource) -> Path | None:
    if not (source.package and source.resource):
        return None
    try:
        root = resources.files(source.package)
    except ModuleNotFoundError:
        return None
    candidate = Path(str(root.joinpath(source.resource)))
    return candidate if candidate.is_file() else None


def _offline_error(spec: ModelSpec, target: Path, reason: str) -> ModelError:
    source = spec.weights
    where_from = f"download {source.url}" if source.url else f"install {source.package}"
    return ModelError(
        f"the weights of {spec.model_id} are not available here and cannot be fetched ({reason})",
        where=source.url or source.package,
        hint=f"{where_from} on a machine with network access and place the file "
        f"{source.file_name!r} at {target} (or pass its local path / s3:// URI explicitly)",
    )


def _download(url: str, target: Path, expected_sha256: str, spec: ModelSpec) -> Path:
    try:
        got = download(
            url, target, expected_sha256=expected_sha256 or None, timeout=_DOWNLOAD_TIMEOUT_S
        )
    except DownloadError as exc:
        if not exc.corrupt:
            raise _offline_error(spec, target, exc.reason) from exc
        raise ModelError(
            f"{exc.problem} for the download of {spec.model_id}: {exc.details}",
            where=url,
            hint="the server returned a different file (proxy page, truncated download?); "
            "nothing was saved; try again or place the right file at " + str(target),
        ) from exc
    if not expected_sha256:
        remember(target, got.sha256)
    return target


def resolve_weights(spec: ModelSpec, path_or_uri: str | os.PathLike | None = None) -> Path:
    """A verified local file holding the pretrained weights of ``spec``.

    Order: an explicit local path or ``s3://``/``https://`` URI; the file shipped in a Python
    package; the cache (``BOXTUNE_HOME/weights/<file_name>``); a download from the spec's URL.
    """
    source = spec.weights
    if path_or_uri is not None:
        location = str(path_or_uri)
        if location.startswith(("http://", "https://")):
            return _download(location, cached_weights_path(spec), source.sha256, spec)
        path = local_copy(location, kind="weights") if is_remote(location) else Path(location)
        path = path.expanduser()
        if not path.is_file():
            raise ModelError(
                "weights file not found",
                where=str(path),
                hint=f"pass the path of {source.file_name!r} for {spec.model_id}",
            )
        _verify(path, spec, f"the weights of {spec.model_id}")
        return path

    packaged = _package_resource(source)
    if packaged is not None:
        verify_sha256(packaged, source.sha256, what=f"the weights of {spec.model_id}")
        return packaged

    target = cached_weights_path(spec)
    if target.is_file():
        _verify(target, spec, f"the cached weights of {spec.model_id}")
        return target
    if not source.url:
        raise _offline_error(spec, target, f"the package {source.package} is not installed")
    if os.environ.get("BOXTUNE_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise _offline_error(spec, target, "BOXTUNE_OFFLINE is set")
    return _download(source.url, target, source.sha256, spec)

"""Downloading PennFudanPed (only on explicit request) and converting it to our layout.

The zip is not redistributable, so boxtune downloads it from its home page, or converts a zip
the user downloaded by hand (``--from-zip``). The site publishes no checksum: pin one with
``--sha256`` / ``BOXTUNE_PENNFUDAN_SHA256`` (or in ``PENNFUDAN_SHA256`` below). Without a pin,
the sha256 of the first download is recorded next to the cached zip and checked on every reuse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from boxtune import fileio
from boxtune.data.importers.pennfudan import find_pennfudan_root, import_pennfudan
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError
from boxtune.paths import boxtune_home

PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
# No checksum is published for this file. Set the sha256 here once verified to pin it for all
# users; until then the first download's hash is recorded and enforced (trust on first use).
PENNFUDAN_SHA256: str | None = None
PENNFUDAN_APPROX_MB = 53.7  # size of the original zip, for the progress message only

Log = Callable[[str], None]
_log = logging.getLogger(__name__)


def _offline_hint(url: str) -> str:
    return (
        f"no network? download {url} in a browser, then run "
        "`boxtune data fetch pennfudan DST --from-zip PATH/PennFudanPed.zip`"
    )


_MISMATCH_HINT = (
    "the file is corrupt or not the original PennFudanPed.zip; delete it and download again, "
    "or pass the right --sha256"
)


def _check_hash(actual: str, expected: str | None, source: str) -> None:
    if expected and actual.lower() != expected.lower():
        raise DatasetError(
            f"sha256 mismatch: expected {expected.lower()}, got {actual}",
            where=source,
            hint=_MISMATCH_HINT,
        )


def download(
    url: str,
    target: Path,
    *,
    expected_sha256: str | None,
    log: Log | None = None,
    timeout: float = 20.0,
) -> Path:
    """Download ``url`` to ``target`` (atomically) with progress, checking size and sha256.

    ``log`` receives the notes (default: the ``boxtune.data.fetch`` logger, at INFO).
    """
    say = log or _log.info
    try:
        got = fileio.download(url, target, expected_sha256=expected_sha256, timeout=timeout)
    except fileio.DownloadError as exc:
        if exc.problem == "sha256 mismatch":
            raise DatasetError(exc.reason, where=url, hint=_MISMATCH_HINT) from exc
        if exc.problem == "incomplete":
            raise DatasetError(
                f"download {exc.reason}", where=url, hint="try again; " + _offline_hint(url)
            ) from exc
        raise DatasetError(
            f"cannot download {url}: {exc.details}", hint=_offline_hint(url)
        ) from exc
    try:
        # fileio accepts a prefix of the digest; a pin here is the whole digest.
        _check_hash(got.sha256, expected_sha256, url)
    except DatasetError:
        target.unlink(missing_ok=True)
        raise
    target.with_name(target.name + ".sha256").write_text(got.sha256 + "\n")
    say(f"downloaded {got.size:,} bytes, sha256 {got.sha256}")
    return target


def _cached_zip(url: str, expected: str | None, log: Log) -> Path:
    cache = boxtune_home() / "downloads" / "pennfudan"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:12] / "PennFudanPed.zip"
    recorded = target.with_name(target.name + ".sha256")
    if target.is_file():
        actual = fileio.sha256_file(target)
        pinned = expected or (recorded.read_text().strip() if recorded.is_file() else None)
        if pinned is None or actual == pinned.lower():
            log(f"using cached {target}")
            return target
        log(f"cached {target} does not match its sha256; downloading again")
        target.unlink()
    log(f"downloading {url} (about {PENNFUDAN_APPROX_MB} MB)")
    return download(url, target, expected_sha256=expected, log=log)


def _extract(zip_path: Path, into: Path) -> Path:
    try:
        fileio.extract_zip(zip_path, into, fileio.ArchiveLimits.from_env())
    except fileio.ArchiveError as exc:
        raise DatasetError(
            f"cannot extract the zip: {exc}",
            where=str(zip_path),
            hint="download the zip again (this is not the original PennFudanPed.zip)",
        ) from exc
    root = find_pennfudan_root(into)
    if not (root / "PNGImages").is_dir():
        raise DatasetError(
            "the zip holds no PennFudanPed/PNGImages folder",
            where=str(zip_path),
            hint="use the original PennFudanPed.zip",
        )
    return root


def fetch_pennfudan(
    dst: str | os.PathLike,
    *,
    from_zip: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    """Download (or take ``from_zip``) PennFudanPed.zip, verify it and convert it to ``dst``.

    ``url`` / ``BOXTUNE_PENNFUDAN_URL`` and ``sha256`` / ``BOXTUNE_PENNFUDAN_SHA256`` override
    the defaults (mirrors, pinned hashes, tests). ``log`` receives the progress notes (default:
    the ``boxtune.data.fetch`` logger, at INFO).
    """
    say = log or _log.info
    url = url or os.environ.get("BOXTUNE_PENNFUDAN_URL") or PENNFUDAN_URL
    expected = sha256 or os.environ.get("BOXTUNE_PENNFUDAN_SHA256") or PENNFUDAN_SHA256
    if Path(dst).exists() and not overwrite and any(Path(dst).iterdir()):
        raise DatasetError(
            "destination already exists and is not empty",
            where=str(dst),
            hint="choose a new folder or pass --overwrite",
        )
    if from_zip is not None:
        zip_path = Path(from_zip)
        if not zip_path.is_file():
            raise DatasetError(
                "zip file not found", where=str(zip_path), hint=f"download it from {url}"
            )
        _check_hash(fileio.sha256_file(zip_path), expected, str(zip_path))
    else:
        zip_path = _cached_zip(url, expected, say)
    with tempfile.TemporaryDirectory(prefix="pennfudan-") as tmp:
        root = _extract(zip_path, Path(tmp))
        dataset = import_pennfudan(root, dst, overwrite=overwrite, log=log)
    say(
        f"PennFudanPed: {len(dataset.images)} images, {len(dataset.annotations)} pedestrians "
        "(the dataset's licence forbids redistribution: keep it local)"
    )
    return dataset


__all__ = ["PENNFUDAN_SHA256", "PENNFUDAN_URL", "download", "fetch_pennfudan"]

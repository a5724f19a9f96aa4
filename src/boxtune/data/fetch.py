"""Downloading PennFudanPed (only on explicit request) and converting it to our layout.

The zip is not redistributable, so boxtune downloads it from its home page, or converts a zip
the user downloaded by hand (``--from-zip``). The site publishes no checksum: pin one with
``--sha256`` / ``BOXTUNE_PENNFUDAN_SHA256`` (or in ``PENNFUDAN_SHA256`` below). Without a pin,
the sha256 of the first download is recorded next to the cached zip and checked on every reuse.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from boxtune.data.importers.pennfudan import find_pennfudan_root, import_pennfudan
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError
from boxtune.paths import boxtune_home

PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
# No checksum is published for this file. Set the sha256 here once verified to pin it for all
# users; until then the first download's hash is recorded and enforced (trust on first use).
PENNFUDAN_SHA256: str | None = None
PENNFUDAN_APPROX_MB = 53.7  # size of the original zip, for the progress message only
CHUNK = 1 << 16


def _offline_hint(url: str) -> str:
    return (
        f"no network? download {url} in a browser, then run "
        "`boxtune data fetch pennfudan DST --from-zip PATH/PennFudanPed.zip`"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(actual: str, expected: str | None, source: str) -> None:
    if expected and actual.lower() != expected.lower():
        raise DatasetError(
            f"sha256 mismatch: expected {expected.lower()}, got {actual}",
            where=source,
            hint="the file is corrupt or not the original PennFudanPed.zip; delete it and "
            "download again, or pass the right --sha256",
        )


def download(
    url: str, target: Path, *, expected_sha256: str | None, log=print, timeout: float = 20.0
) -> Path:
    """Download ``url`` to ``target`` (atomically) with progress, checking size and sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.partial-")[1])
    digest = hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "boxtune"})
        with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name, disable=None
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DatasetError(
                f"download incomplete: {received} of {total} bytes",
                where=url,
                hint="try again; " + _offline_hint(url),
            )
        actual = digest.hexdigest()
        _check_hash(actual, expected_sha256, url)
    except DatasetError:
        tmp.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DatasetError(f"cannot download {url}: {reason}", hint=_offline_hint(url)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    target.with_name(target.name + ".sha256").write_text(actual + "\n")
    log(f"downloaded {received:,} bytes, sha256 {actual}")
    return target


def _cached_zip(url: str, expected: str | None, log) -> Path:
    cache = boxtune_home() / "downloads" / "pennfudan"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:12] / "PennFudanPed.zip"
    recorded = target.with_name(target.name + ".sha256")
    if target.is_file():
        actual = sha256_of(target)
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
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.namelist():
                resolved = (into / member).resolve()
                if not resolved.is_relative_to(into.resolve()):
                    raise DatasetError(
                        f"zip member '{member}' would be written outside the target folder",
                        where=str(zip_path),
                        hint="this is not the original PennFudanPed.zip",
                    )
            archive.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DatasetError(
            f"not a valid zip file ({exc})", where=str(zip_path), hint="download the zip again"
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
    log=print,
) -> DetectionDataset:
    """Download (or take ``from_zip``) PennFudanPed.zip, verify it and convert it to ``dst``.

    ``url`` / ``BOXTUNE_PENNFUDAN_URL`` and ``sha256`` / ``BOXTUNE_PENNFUDAN_SHA256`` override
    the defaults (mirrors, pinned hashes, tests).
    """
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
        _check_hash(sha256_of(zip_path), expected, str(zip_path))
    else:
        zip_path = _cached_zip(url, expected, log)
    with tempfile.TemporaryDirectory(prefix="pennfudan-") as tmp:
        root = _extract(zip_path, Path(tmp))
        dataset = import_pennfudan(root, dst, overwrite=overwrite, log=log)
    log(
        f"PennFudanPed: {len(dataset.images)} images, {len(dataset.annotations)} pedestrians "
        "(the dataset's licence forbids redistribution: keep it local)"
    )
    return dataset


__all__ = ["PENNFUDAN_SHA256", "PENNFUDAN_URL", "download", "fetch_pennfudan"]

"""Pretrained-model tarballs whose publisher gives no checksum (the TF2 zoo, TF Hub): the sha256
of the file boxtune first uses is recorded next to it (``<file>.sha256``, as the PennFudanPed
download does) and checked on every later use; the tarball is extracted once, safely, into a
folder keyed by that hash.

Layout under ``BOXTUNE_HOME/weights/extracted/``::

    <key>/                  a complete extraction (it appears by one rename, so it is whole)
    .<key>.partial-*        an extraction in progress (or left by a killed process)
    .locks/<key>.lock       held while extracting: concurrent users wait, then reuse <key>/
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from boxtune.errors import ModelError
from boxtune.fileio import (
    ArchiveError,
    ArchiveLimits,
    FileLock,
    SafeTar,
    atomic_write_text,
    remove_path,
    replace_directory,
    sha256_file,
    sha256_matches,
)
from boxtune.paths import boxtune_home

_log = logging.getLogger(__name__)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Digests already computed in this process, keyed by (path, size, mtime): hashing a 600 MB
# tarball on every model build would cost seconds.
_digests: dict[tuple[str, int, int], str] = {}


def record_path(path: Path) -> Path:
    """Where the sha256 of ``path`` is recorded on first use."""
    return path.with_name(path.name + ".sha256")


def extraction_root() -> Path:
    return boxtune_home() / "weights" / "extracted"


def _stat_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _recorded(path: Path) -> str | None:
    record = record_path(path)
    if not record.is_file():
        return None
    text = record.read_text().strip().split()
    digest = text[0].lower() if text else ""
    if not _HEX64.match(digest):
        raise ModelError(
            "the recorded sha256 is not a sha256 digest",
            where=str(record),
            hint=f"delete {record.name}: the hash of {path.name} is recorded again on next use",
        )
    return digest


def checked_sha256(path: Path, *, pinned: str = "", what: str) -> str:
    """The sha256 of ``path``, which must match ``pinned`` (a published hash or prefix) or, when
    there is none, the digest recorded next to the file on first use. Nothing is recorded here:
    call :func:`remember` once the file proved good (it extracted)."""
    key = _stat_key(path)
    actual = _digests.get(key) or sha256_file(path)
    _digests[key] = actual
    if pinned:
        if not sha256_matches(actual, pinned):
            raise ModelError(
                f"sha256 mismatch for {what}: expected {pinned.lower()}…, got {actual}",
                where=str(path),
                hint="the file is corrupt or not the published one; delete it and download "
                "it again (or place the right file there)",
            )
        return actual
    recorded = _recorded(path)
    if recorded is not None and recorded != actual:
        record = record_path(path)
        raise ModelError(
            f"sha256 mismatch for {what}: {recorded} was recorded when boxtune first used "
            f"this file, it is now {actual}",
            where=str(path),
            hint=f"the file changed since (corrupt, or replaced by another one): put the "
            f"original back, or delete {path.name} and {record.name} to download it again "
            "(or to use the new file, whose hash is then recorded)",
        )
    return actual


def remember(path: Path, digest: str) -> None:
    """Record ``digest`` next to ``path`` unless a record is there (a read-only folder only
    skips the record: the file is still used)."""
    record = record_path(path)
    if record.is_file():
        return
    try:
        atomic_write_text(record, digest + "\n")
    except OSError as exc:
        _log.warning("cannot record the sha256 of %s in %s (%s)", path, record, exc)
        return
    _digests[_stat_key(path)] = digest


class ModelTarball(SafeTar):
    """:class:`~boxtune.fileio.SafeTar` that also reads the ``./``-prefixed names of
    ``tar -C DIR .`` archives (TF Hub's compressed format: ``./``, ``./saved_model.pb``,
    ``./variables/...``): the prefix is dropped and the ``.`` entry skipped before the usual
    checks, so ``members`` and ``extract`` use the plain relative names."""

    def _scan(self) -> None:
        assert self._tar is not None
        kept = []
        for member in self._tar.getmembers():
            name = member.name
            while name.startswith("./"):
                name = name[2:]
            if name in ("", "."):
                continue
            member.name = name
            kept.append(member)
        self._tar.members = kept  # what iterating the (fully loaded) archive yields
        super()._scan()


def archive_error(exc: ArchiveError, tarball: Path, what: str) -> ModelError:
    """A user-facing error for an archive that cannot be extracted."""
    record = record_path(tarball)
    if exc.kind == "damaged":
        problem, hint = (
            "is corrupt or not a .tar.gz",
            f"delete {tarball.name} (and {record.name} if there is one) and download it again",
        )
    elif exc.kind == "disk":
        problem, hint = "does not fit on the disk", "free some space and try again"
    else:
        problem, hint = (
            "is not a tarball boxtune extracts",
            "use the publisher's original tarball",
        )
    return ModelError(f"the tarball of {what} {problem}: {exc}", where=str(tarball), hint=hint)


def extract_once(key: str, build: Callable[[Path], None]) -> Path:
    """``extraction_root()/key``, made by ``build(staging)`` the first time: ``build`` writes
    into an empty staging folder, renamed into place once it returns (so the folder is whole
    or absent); concurrent callers wait on a lock and reuse it."""
    root = extraction_root()
    final = root / key
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".locks" / f"{key}.lock"):
        if final.is_dir():
            return final
        for stale in root.glob(f".{key}.partial-*"):  # left by a killed process
            remove_path(stale)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}.partial-"))
        try:
            build(staging)
            replace_directory(staging, final)
        finally:
            remove_path(staging)
    return final


def limits() -> ArchiveLimits:
    return ArchiveLimits.from_env()

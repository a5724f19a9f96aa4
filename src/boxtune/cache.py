"""The extraction cache: one directory per ``model.tar.gz``, keyed by the tarball's sha256.

Layout under ``BOXTUNE_HOME/artifacts/``::

    <key>/                  a complete extraction (it appears by one rename, so it is whole)
    .<key>.partial-*        an extraction in progress (or left by a killed process)
    .locks/<key>.lock       held exclusively while extracting: concurrent loaders wait
    .locks/<key>.pin        held shared by every process using the entry: prune skips it;
                            its mtime is the entry's last use

Processes that load the same tarball at once extract it once: the first takes the lock and
extracts, the others wait and then reuse the complete entry. ``BOXTUNE_CACHE_MAX_BYTES``
(default 20 GiB) caps the cache: after an extraction the least recently used entries that no
process holds are removed. ``boxtune cache list|prune`` shows and trims it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boxtune.errors import BoxtuneError
from boxtune.fileio import FileLock, human_bytes, remove_path, sha256_file
from boxtune.paths import boxtune_home

DEFAULT_MAX_BYTES = 20 << 30
KEY_LENGTH = 20
_LOCKS = ".locks"
_MANIFEST = "boxtune-model.json"  # an entry is complete once its manifest is there

# Pins this process holds (key -> lock); kept until exit, so an entry in use is never pruned.
_pins: dict[str, FileLock] = {}


def cache_dir() -> Path:
    return boxtune_home() / "artifacts"


def max_cache_bytes() -> int:
    value = os.environ.get("BOXTUNE_CACHE_MAX_BYTES", "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(value)
    except ValueError as exc:
        raise BoxtuneError(
            f"BOXTUNE_CACHE_MAX_BYTES={value!r}: {exc}",
            hint="give a size such as 20GB, 500MB or a number of bytes",
        ) from None


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"20GB"``, ``"500M"``, ``"1.5 GiB"`` or ``"1234"`` as bytes (binary units)."""
    cleaned = text.strip().lower().replace(" ", "").removesuffix("ib").removesuffix("b")
    number = cleaned.rstrip("kmgt")
    unit = cleaned[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size") from None
    if unit not in _UNITS or value < 0:
        raise ValueError(f"{text!r} is not a size")
    return int(value * _UNITS[unit])


def _lock(key: str, kind: str) -> FileLock:
    return FileLock(cache_dir() / _LOCKS / f"{key}.{kind}")


def _pin(key: str) -> None:
    """Hold a shared pin on ``key`` for the rest of this process and mark it used now."""
    pin = _pins.get(key)
    if pin is None:
        pin = _lock(key, "pin")
        pin.acquire(shared=True)  # waits only while a prune is deleting this entry
        _pins[key] = pin
    os.utime(pin.path)


def release_pins() -> None:
    """Drop this process's pins (a long-lived process that has loaded its models into memory,
    or a test)."""
    while _pins:
        _pins.popitem()[1].release()


def extracted(tarball: Path, extract: Callable[[Path, Path], None]) -> Path:
    """The cache entry of ``tarball``, extracting it once with ``extract(tarball, into)``
    when no complete entry exists (concurrent callers wait for the first)."""
    key = sha256_file(tarball)[:KEY_LENGTH]
    root = cache_dir()
    entry = root / key
    _pin(key)
    with _lock(key, "lock"):
        if (entry / _MANIFEST).is_file():
            return entry
        for stale in root.glob(f".{key}.partial-*"):  # a killed extraction; we hold the lock
            remove_path(stale)
        remove_path(entry)  # an incomplete entry (no manifest) is never reused
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}.partial-"))
        try:
            extract(tarball, staging)
            os.replace(staging, entry)
        except BaseException:
            remove_path(staging)
            raise
    _enforce_cap(max_cache_bytes(), keep=key)
    return entry


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size_bytes: int
    files: int
    model_id: str | None
    last_used: float
    in_use: bool

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "size": human_bytes(self.size_bytes),
            "files": self.files,
            "model_id": self.model_id,
            "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_used)),
            "in_use": self.in_use,
        }


def _in_use(key: str) -> bool:
    if key in _pins:
        return True
    probe = _lock(key, "pin")
    try:
        if not probe.acquire(blocking=False):
            return True
    finally:
        probe.release()
    return False


def _entry(path: Path) -> CacheEntry:
    size = files = 0
    for item in path.rglob("*"):
        if item.is_file():
            size += item.stat().st_size
            files += 1
    try:
        model_id = json.loads((path / _MANIFEST).read_text()).get("model_id")
    except (OSError, ValueError, AttributeError):
        model_id = None
    pin = cache_dir() / _LOCKS / f"{path.name}.pin"
    last_used = pin.stat().st_mtime if pin.exists() else path.stat().st_mtime
    return CacheEntry(path.name, path, size, files, model_id, last_used, _in_use(path.name))


def list_entries() -> list[CacheEntry]:
    """Every cache entry, the most recently used first (partial extractions excluded)."""
    root = cache_dir()
    if not root.is_dir():
        return []
    entries = [_entry(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(entries, key=lambda e: e.last_used, reverse=True)


@dataclass(frozen=True)
class PruneResult:
    removed: list[CacheEntry]
    kept_in_use: list[CacheEntry]
    freed_bytes: int
    remaining_bytes: int


def _remove_entry(entry: CacheEntry) -> bool:
    """Delete ``entry`` unless a process holds it (checked under its pin and lock)."""
    pin, lock = _lock(entry.key, "pin"), _lock(entry.key, "lock")
    try:
        if entry.key in _pins or not pin.acquire(blocking=False):
            return False
        if not lock.acquire(blocking=False):
            return False
        # Renamed first, so a half-deleted entry never looks like a complete one.
        doomed = entry.path.with_name(f".{entry.key}.deleting-{os.getpid()}")
        os.replace(entry.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        lock.release()
        pin.release()


def prune(*, max_bytes: int = 0, keep: str | None = None) -> PruneResult:
    """Remove the least recently used entries until the cache holds at most ``max_bytes``
    (0: remove every entry), skipping entries in use and ``keep``. Leftovers of killed
    extractions and deletions go too."""
    root = cache_dir()
    for leftover in root.glob(".*.partial-*") if root.is_dir() else ():
        key = leftover.name[1:].split(".", 1)[0]
        probe = _lock(key, "lock")
        if probe.acquire(blocking=False):  # no extraction of this key is running
            remove_path(leftover)
        probe.release()
    for leftover in root.glob(".*.deleting-*") if root.is_dir() else ():
        remove_path(leftover)
    entries = list_entries()
    total = sum(e.size_bytes for e in entries)
    removed: list[CacheEntry] = []
    kept: list[CacheEntry] = []
    for entry in reversed(entries):  # oldest first
        if total <= max_bytes and max_bytes > 0:
            break
        if entry.key == keep:
            continue
        if _remove_entry(entry):
            removed.append(entry)
            total -= entry.size_bytes
        else:
            kept.append(entry)
    freed = sum(e.size_bytes for e in removed)
    return PruneResult(removed, kept, freed, total)


def _enforce_cap(max_bytes: int, keep: str) -> None:
    entries = list_entries()
    if sum(e.size_bytes for e in entries) > max_bytes:
        prune(max_bytes=max_bytes, keep=keep)

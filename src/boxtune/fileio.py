"""The file-system primitives every part of boxtune shares.

- :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text` /
  :func:`atomic_write_json`: a file appears whole or not at all (temp file in the same
  directory, then ``os.replace``); a failure leaves the previous file untouched.
- :func:`replace_directory`: move a fully written staging directory over a target directory;
  :func:`move_into_place` does the same for a staging file or directory, :func:`remove_path`
  deletes either.
- :func:`sha256_file`: the hex digest of a file, read in chunks.
- :func:`download`: a verified download (sha256, size) with a progress bar, atomic as above.

Nothing here knows about models or datasets; callers turn :class:`DownloadError` into their own
user-facing errors (with the hint that fits them).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

_CHUNK = 1 << 20


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path next to ``path`` to write into; renamed onto ``path`` when the block ends
    without an error, deleted otherwise.

    >>> with atomic_path(target) as tmp:
    ...     image.save(tmp, format="PNG")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _new_temp_file(target: Path) -> Path:
    """A new empty file next to ``target``. Unlike ``mkstemp``'s (always 0600) its mode follows
    the umask, so the renamed file gets the permissions a plain ``open(target, "w")`` gives."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> None:
    """Sorted keys and a final newline, so equal data gives equal bytes (hashes, diffs)."""
    text = json.dumps(data, indent=indent, sort_keys=True, default=str)
    atomic_write_text(path, text + "\n")


def replace_directory(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete directory ``staging`` at ``target``, replacing what is there.

    The old directory is first renamed aside, so ``target`` is never a mix of old and new
    files; the old copy is deleted afterwards. ``staging`` and ``target`` must be on the same
    file system (create the staging directory next to the target).
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, old / "previous")
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def move_into_place(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a complete staging file or directory onto ``target`` (same file system)."""
    if Path(staging).is_dir():
        replace_directory(staging, target)
    else:
        os.replace(staging, target)


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree; nothing there is fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_matches(actual: str, expected: str) -> bool:
    """``expected`` may be a prefix of the digest (torchvision publishes 8 hex digits)."""
    return bool(expected) and actual.lower().startswith(expected.lower())


DownloadProblem = Literal["download failed", "incomplete", "sha256 mismatch"]


class DownloadError(Exception):
    """A download that failed: ``problem`` says which way, ``details`` the specifics (the
    network error, the byte counts, the two digests); ``reason`` is both in one phrase."""

    def __init__(self, url: str, problem: DownloadProblem, details: str):
        self.url = url
        self.problem = problem
        self.details = details
        super().__init__(f"{url}: {self.reason}")

    @property
    def reason(self) -> str:
        return f"{self.problem}: {self.details}"

    @property
    def corrupt(self) -> bool:
        """Bytes arrived, but not the expected file (a retry or a hand-placed file helps)."""
        return self.problem != "download failed"


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size: int


def download(
    url: str,
    target: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> Downloaded:
    """Fetch ``url`` into ``target``: the file appears only once it is complete (the
    ``Content-Length`` is checked) and, when ``expected_sha256`` (or a prefix of it) is given,
    matches it. ``progress=None`` shows a bar only on a terminal."""
    from tqdm import tqdm

    target = Path(target)
    digest = hashlib.sha256()
    received = 0
    try:
        with atomic_path(target) as tmp:
            request = urllib.request.Request(url, headers={"User-Agent": "boxtune"})
            with (
                urllib.request.urlopen(request, timeout=timeout) as response,
                open(tmp, "wb") as out,
            ):
                total = int(response.headers.get("Content-Length") or 0) or None
                disable = None if progress is None else not progress
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"downloading {target.name}",
                    disable=disable,
                ) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(url, "incomplete", f"{received} of {total} bytes arrived")
            actual = digest.hexdigest()
            if expected_sha256 and not sha256_matches(actual, expected_sha256):
                raise DownloadError(
                    url, "sha256 mismatch", f"expected {expected_sha256.lower()}…, got {actual}"
                )
    except DownloadError:
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
        # The exception's own text: "HTTP Error 404: Not Found", "<urlopen error ...>".
        raise DownloadError(url, "download failed", str(exc)) from exc
    return Downloaded(target, actual, received)

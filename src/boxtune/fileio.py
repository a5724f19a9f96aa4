"""The file-system primitives every part of boxtune shares.

- :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text` /
  :func:`atomic_write_json`: a file appears whole or not at all (temp file in the same
  directory, then ``os.replace``); a failure leaves the previous file untouched.
- :func:`replace_directory`: move a fully written staging directory over a target directory;
  :func:`move_into_place` does the same for a staging file or directory, :func:`remove_path`
  deletes either.
- :func:`sha256_file`: the hex digest of a file, read in chunks.
- :func:`download`: a verified download (sha256, size) with a progress bar, atomic as above.
- :class:`SafeTar`: extraction of chosen members of a ``.tar.gz`` within :class:`ArchiveLimits`
  (no links, devices, sparse or unsafe names; member count, sizes, free space);
  :func:`unsafe_name_problem` is the one rule for safe relative names.
- :class:`FileLock`: an advisory ``flock`` (shared or exclusive) between processes.

Nothing here knows about models or datasets; callers turn :class:`DownloadError` into their own
user-facing errors (with the hint that fits them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
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
    tmp = new_temp_file(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def new_temp_file(target: Path) -> Path:
    """A new empty file next to ``target``. Unlike ``mkstemp``'s (always 0600) its mode follows
    the umask, so the renamed file gets the permissions a plain ``open(target, "w")`` gives."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def set_default_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open(path, "w")`` would (0666 less the umask), for
    writers that create their files 0600 (safetensors): an artifact is read by other users
    (a serving account) as well."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


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


# --- safe names and tar extraction ---------------------------------------------------------

_MAX_NAME = 1024
_MAX_COMPONENT = 255


def unsafe_name_problem(name: object) -> str | None:
    """Why ``name`` is not a safe relative file name inside a directory, or None when it is.

    Safe: a relative POSIX path without backslashes or NUL whose components are not empty,
    ``.``, ``..`` or hidden (hidden names are temp files), within the usual length limits.
    """
    if not isinstance(name, str) or not name:
        return "not a non-empty string"
    if len(name) > _MAX_NAME:
        return f"longer than {_MAX_NAME} characters"
    if "\\" in name or "\0" in name:
        return "contains a backslash or NUL"
    if name.startswith("/"):
        return "an absolute path"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"has an empty, '.' or '..' component {part!r}"
        if part.startswith("."):
            return f"has a hidden component {part!r}"
        if len(part) > _MAX_COMPONENT:
            return f"has a component longer than {_MAX_COMPONENT} characters"
    return None


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold before boxtune refuses it (a decompression bomb, a member
    flood). Defaults fit the largest catalog model many times over."""

    max_members: int = 10_000
    max_member_bytes: int = 8 << 30
    max_total_bytes: int = 16 << 30

    @classmethod
    def from_env(cls) -> ArchiveLimits:
        """Defaults, overridden by ``BOXTUNE_MAX_ARCHIVE_MEMBERS`` / ``..._MEMBER_BYTES`` /
        ``..._BYTES`` (plain integers)."""
        default = cls()
        return cls(
            max_members=_env_int("BOXTUNE_MAX_ARCHIVE_MEMBERS", default.max_members),
            max_member_bytes=_env_int("BOXTUNE_MAX_ARCHIVE_MEMBER_BYTES", default.max_member_bytes),
            max_total_bytes=_env_int("BOXTUNE_MAX_ARCHIVE_BYTES", default.max_total_bytes),
        )


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r} must be positive")
    return number


ArchiveProblem = Literal["unsafe", "damaged", "limit", "mismatch", "disk"]


class ArchiveError(Exception):
    """An archive boxtune will not (or cannot) extract. ``kind`` says which way: ``unsafe``
    (an entry that could escape or is not a plain file), ``damaged`` (unreadable),
    ``limit`` (over :class:`ArchiveLimits`), ``mismatch`` (not the files expected), ``disk``
    (not enough free space). Callers add the hint that fits them."""

    def __init__(self, kind: ArchiveProblem, message: str):
        self.kind = kind
        super().__init__(message)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


_TAR_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class SafeTar:
    """A ``.tar.gz`` opened for safe extraction: every entry's header is checked once, up
    front and before anything is written (names, types, sparse members, sizes, the member
    count); then :meth:`read` and :meth:`extract` take only the named regular files.

    >>> with SafeTar(path, ArchiveLimits()) as archive:
    ...     manifest = json.loads(archive.read("manifest.json", max_bytes=1 << 20))
    ...     archive.extract({"weights.bin": 1234}, destination)
    """

    def __init__(self, path: str | os.PathLike, limits: ArchiveLimits):
        self.path = Path(path)
        self.limits = limits
        self._tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}

    def __enter__(self) -> SafeTar:
        try:
            self._tar = tarfile.open(self.path, mode="r:gz")
            self._scan()
        except _TAR_READ_ERRORS as exc:
            self.close()
            raise ArchiveError("damaged", f"cannot read the archive ({exc})") from exc
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _scan(self) -> None:
        assert self._tar is not None
        limits = self.limits
        for count, member in enumerate(self._tar, start=1):
            if count > limits.max_members:
                raise ArchiveError("limit", f"more than {limits.max_members} entries")
            name = member.name
            if name in self.members:
                raise ArchiveError(
                    "unsafe", f"unexpected entry {name!r} in the archive (a duplicate)"
                )
            if not (member.isfile() or member.isdir()):
                raise ArchiveError(
                    "unsafe", f"unexpected entry {name!r} in the archive (not a regular file)"
                )
            if member.issparse():
                raise ArchiveError(
                    "unsafe", f"unexpected entry {name!r} in the archive (a sparse file)"
                )
            problem = unsafe_name_problem(name)
            if problem:
                raise ArchiveError("unsafe", f"unexpected entry {name!r} ({problem})")
            if member.size > limits.max_member_bytes:
                raise ArchiveError(
                    "limit",
                    f"entry {name!r} is {human_bytes(member.size)}, over the limit of "
                    f"{human_bytes(limits.max_member_bytes)} per file",
                )
            self.members[name] = member

    def _file(self, name: str) -> tarfile.TarInfo:
        member = self.members.get(name)
        if member is None or not member.isfile():
            raise ArchiveError("mismatch", f"the archive holds no file {name!r}")
        return member

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """The bytes of the regular file ``name`` (refused when larger than ``max_bytes``)."""
        member = self._file(name)
        if member.size > max_bytes:
            raise ArchiveError(
                "limit", f"{name!r} is {human_bytes(member.size)}, over {human_bytes(max_bytes)}"
            )
        assert self._tar is not None
        try:
            source = self._tar.extractfile(member)
            assert source is not None
            with source:
                return source.read()
        except _TAR_READ_ERRORS as exc:
            raise ArchiveError("damaged", f"cannot read the archive ({exc})") from exc

    def extract(self, expected: dict[str, int], destination: str | os.PathLike) -> None:
        """Write the regular files ``expected`` (name -> size in bytes) under ``destination``
        and nothing else. Each must be in the archive with exactly that size; their total
        must fit :attr:`limits` and the free space. A write error (disk full) is an OSError."""
        root = Path(destination).resolve()
        members = []
        for name, size in expected.items():
            member = self._file(name)
            if member.size != size:
                raise ArchiveError(
                    "mismatch", f"{name!r} is {member.size} bytes in the archive, {size} expected"
                )
            members.append(member)
        total = sum(member.size for member in members)
        if total > self.limits.max_total_bytes:
            raise ArchiveError(
                "limit",
                f"the files add up to {human_bytes(total)}, over the limit of "
                f"{human_bytes(self.limits.max_total_bytes)}",
            )
        free = shutil.disk_usage(root).free
        if total > free:
            raise ArchiveError(
                "disk",
                f"extracting needs {human_bytes(total)} but only {human_bytes(free)} is free "
                f"on the file system of {root}",
            )
        assert self._tar is not None
        # In archive order: a gzip stream only reads forward cheaply.
        for member in sorted(members, key=lambda m: m.offset):
            path = root / member.name
            if not path.resolve().is_relative_to(root):  # a link already on disk
                raise ArchiveError("unsafe", f"unexpected entry {member.name!r} (outside it)")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                source = self._tar.extractfile(member)
                assert source is not None
                with source, open(path, "xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            except _TAR_READ_ERRORS as exc:
                raise ArchiveError("damaged", f"cannot read the archive ({exc})") from exc


def _zip_entry_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    # Only the file-type bits count: zipfile.writestr stores 0o600 with none set.
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not a regular file"
    return unsafe_name_problem(info.filename.rstrip("/"))


def _skipped_zip_entry(name: str) -> bool:
    """Folders and what archivers and tools add beside the files (``__MACOSX/``,
    ``.DS_Store``, ``.git/``, ``.ipynb_checkpoints/``)."""
    parts = name.rstrip("/").split("/")
    hidden = any(part.startswith(".") and part not in (".", "..") for part in parts)
    return name.endswith("/") or parts[0] == "__MACOSX" or hidden


def extract_zip(
    path: str | os.PathLike, destination: str | os.PathLike, limits: ArchiveLimits
) -> list[str]:
    """Extract the regular files of the zip at ``path`` into the folder ``destination`` after
    checking every entry first (names that could escape, links, encryption, sizes against
    ``limits`` and the free space); returns the names written. Archivers' side files
    (``__MACOSX/``, hidden names) are left out. Raises :class:`ArchiveError`."""
    root = Path(destination).resolve()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError("damaged", f"not a readable zip file ({exc})") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_members:
            raise ArchiveError("limit", f"more than {limits.max_members} entries")
        files = []
        for info in entries:
            if info.filename.startswith(("/", "\\")) or ".." in info.filename.split("/"):
                raise ArchiveError("unsafe", f"entry {info.filename!r} would land outside it")
            if _skipped_zip_entry(info.filename):
                continue
            problem = _zip_entry_problem(info)
            if problem:
                raise ArchiveError("unsafe", f"entry {info.filename!r} is {problem}")
            if info.file_size > limits.max_member_bytes:
                raise ArchiveError(
                    "limit",
                    f"entry {info.filename!r} is {human_bytes(info.file_size)}, over the limit "
                    f"of {human_bytes(limits.max_member_bytes)} per file",
                )
            files.append(info)
        total = sum(info.file_size for info in files)
        if total > limits.max_total_bytes:
            raise ArchiveError(
                "limit",
                f"the files add up to {human_bytes(total)} unpacked, over the limit of "
                f"{human_bytes(limits.max_total_bytes)}",
            )
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
        if total > free:
            raise ArchiveError(
                "disk",
                f"extracting needs {human_bytes(total)} but only {human_bytes(free)} is free",
            )
        for info in files:
            target = root / info.filename
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:  # a file entry named so
                raise ArchiveError(
                    "unsafe", f"entry {info.filename!r} is inside a path that is a file"
                ) from exc
            if not target.resolve().is_relative_to(root):
                raise ArchiveError("unsafe", f"entry {info.filename!r} would land outside it")
            try:
                # zipfile stops at the declared size and checks the CRC, so a header that
                # lies about the size cannot write more than was checked above.
                with archive.open(info) as source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise ArchiveError("damaged", f"cannot read {info.filename!r} ({exc})") from exc
            except FileExistsError as exc:
                raise ArchiveError("unsafe", f"entry {info.filename!r} appears twice") from exc
        return [info.filename for info in files]


# --- locks ---------------------------------------------------------------------------------


class FileLock:
    """An advisory ``flock`` on a lock file, shared or exclusive, held until :meth:`release`
    (or the process ends: the kernel drops it, so a killed holder never blocks anyone)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        """True once held; False only when ``blocking=False`` and another holder conflicts."""
        import fcntl

        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self._fd, mode | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

"""The job registry's SQLite file itself: created whole, checked before use, backed up and
recovered. What the rows mean is :mod:`boxtune.jobs.store`'s business.

The registry never loses jobs silently:

- it is created whole (schema written in a temp file, then linked into place), so an empty
  (0-byte) file is never a legitimate state;
- each process checks the file once (header, ``PRAGMA quick_check``, schema version) before
  using it, and again whenever the file changed under it; a damaged file is a
  :class:`RegistryError` naming the file, what is wrong and how to recover, and is never
  written to;
- a verified backup (``registry.sqlite3.backup``) follows the changes, and
  ``boxtune jobs recover`` (:func:`recover_registry`) restores it, keeping the damaged file
  aside.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from boxtune.errors import BoxtuneError
from boxtune.fileio import atomic_path, new_temp_file
from boxtune.paths import boxtune_home

# -- the file's schema ---------------------------------------------------------------------------
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model_id TEXT,
    base_model TEXT,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    inputs TEXT NOT NULL DEFAULT '{}',
    output_path TEXT,
    model_data TEXT,
    work_dir TEXT NOT NULL,
    log_path TEXT NOT NULL,
    command TEXT NOT NULL,
    pid INTEGER,
    pid_started TEXT,
    child_pid INTEGER,
    exit_code INTEGER,
    failure_reason TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    source TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    model_id TEXT,
    job_name TEXT,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    backend TEXT,
    pid INTEGER,
    pid_started TEXT,
    log_path TEXT NOT NULL,
    command TEXT NOT NULL,
    failure_reason TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS name_claims (
    name TEXT PRIMARY KEY,
    claimed_at REAL NOT NULL
);
"""
_REGISTRY_TABLES = frozenset({"jobs", "endpoints", "name_claims"})


def registry_path() -> Path:
    return boxtune_home() / "registry.sqlite3"


# -- damage: what is wrong with a registry file ---------------------------------------------------
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SHOWN_CHECK_LINES = 3
DEFAULT_TIMEOUT_S = 30.0
BACKUP_INTERVAL_S = 60.0
BACKUP_INTERVAL_ENV = "BOXTUNE_REGISTRY_BACKUP_INTERVAL_S"

DamageKind = Literal["empty", "not-sqlite", "corrupt", "schema", "newer", "missing"]


class RegistryError(BoxtuneError):
    """The job registry cannot be used: damaged, missing, locked or unreadable.

    ``kind`` says which (``"empty"``, ``"not-sqlite"``, ``"corrupt"``, ``"schema"``,
    ``"newer"``, ``"missing"``, ``"locked"``, ``"unavailable"``).
    """

    def __init__(self, message: str, *, where: str, hint: str, kind: str):
        self.kind = kind
        super().__init__(message, where=where, hint=hint)


@dataclass(frozen=True)
class Damage:
    kind: DamageKind
    detail: str


@dataclass(frozen=True)
class BackupInfo:
    """The backup boxtune keeps of a registry, as found on disk."""

    path: Path
    taken_at: float
    jobs: int = 0
    endpoints: int = 0
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        taken = datetime.fromtimestamp(self.taken_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.path} ({self.jobs} jobs, {self.endpoints} endpoints, taken {taken})"


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def _companions(path: Path) -> list[Path]:
    """SQLite's side files of ``path`` (WAL mode): they belong to it and move with it."""
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def _uri(path: Path, mode: str) -> str:
    # mode=rw never creates a file: a registry moved away must not come back as a 0-byte one.
    return f"{path.absolute().as_uri()}?mode={mode}"


def _error_name(exc: sqlite3.Error) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""


def _is_corruption(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def _is_busy(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def diagnose(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Damage | None:
    """What is wrong with the registry file ``path``, or None when it is sound.

    Reads only (a read-only connection): a damaged file is left byte-for-byte as it was.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Damage("missing", "the file does not exist")
    if size == 0:
        return Damage(
            "empty",
            "the file is empty (0 bytes); boxtune never leaves it empty, so its contents were "
            "lost (a crash or a full disk while copying or restoring it, or a truncation)",
        )
    with open(path, "rb") as handle:
        header = handle.read(100)
    if not header.startswith(_SQLITE_MAGIC):
        return Damage(
            "not-sqlite", f"the file is not an SQLite database (it starts with {header[:16]!r})"
        )
    side_files_before = {p for p in _companions(path) if p.exists()}
    damage = _check_contents(path, header, size, timeout_s)
    if damage is not None:
        _remove_side_files_created(path, side_files_before)
    return damage


def _check_contents(path: Path, header: bytes, size: int, timeout_s: float) -> Damage | None:
    try:
        with closing(sqlite3.connect(_uri(path, "ro"), uri=True, timeout=timeout_s)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(10)")]
            if problems != ["ok"]:
                return _corrupt(problems, header, size)
            return _schema_damage(conn)
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            return _corrupt([str(exc)], header, size)
        raise _operational_error(exc, path) from exc


def _corrupt(problems: list[str], header: bytes, size: int) -> Damage:
    # quick_check's rows can hold several lines each, headed "*** in database main ***".
    lines = [line for row in problems for line in row.splitlines() if not line.startswith("***")]
    shown = "; ".join(lines[:_SHOWN_CHECK_LINES])
    if len(lines) > _SHOWN_CHECK_LINES:
        shown += f"; … ({len(lines) - _SHOWN_CHECK_LINES} more)"
    detail = f"the integrity check (PRAGMA quick_check) failed: {shown}"
    page_size = int.from_bytes(header[16:18], "big") or 1
    page_size = 65536 if page_size == 1 else page_size
    header_pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96]  # SQLite's own rule for that field
    if header_size_valid and header_pages * page_size > size:
        detail += (
            f" (the file is {size} bytes, its header says {header_pages * page_size}: "
            "it was truncated)"
        )
    return Damage("corrupt", detail)


def _schema_damage(conn: sqlite3.Connection) -> Damage | None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version > SCHEMA_VERSION:
        return Damage("newer", f"written by a newer boxtune (schema {version})")
    foreign = sorted(tables - _REGISTRY_TABLES)
    if version == 0 and foreign:
        return Damage(
            "schema",
            f"unknown schema version 0 with the tables {', '.join(foreign)}: "
            "it is not a boxtune job registry",
        )
    if version > 0 and not {"jobs", "endpoints"} <= tables:
        return Damage(
            "schema", f"schema version {version} but the jobs or endpoints table is missing"
        )
    return None


def _remove_side_files_created(path: Path, existed: set[Path]) -> None:
    """A read-only look at a WAL database creates an empty -wal and a -shm; next to a damaged
    file they are litter (and nothing else may use that file), so take back what we made."""
    wal, shm = _companions(path)
    if wal not in existed and wal.exists() and wal.stat().st_size == 0:
        wal.unlink(missing_ok=True)
        if shm not in existed:
            shm.unlink(missing_ok=True)


def describe_backup(path: Path) -> BackupInfo | None:
    """The backup of the registry ``path``: when it was taken, what it holds, whether it is
    sound; None when there is none."""
    target = backup_path(path)
    try:
        taken_at = target.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        damage = diagnose(target)
    except RegistryError as exc:
        return BackupInfo(target, taken_at, problem=exc.message)
    if damage is not None:
        return BackupInfo(target, taken_at, problem=damage.detail)
    jobs, endpoints = _count_rows(target)
    return BackupInfo(target, taken_at, jobs, endpoints)


def _count_rows(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(_uri(path, "ro"), uri=True)) as conn:
        jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        endpoints = conn.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0]
    return jobs, endpoints


# -- damage: the errors users see ---------------------------------------------------------------
def damage_error(path: Path, damage: Damage) -> RegistryError:
    """The error for a damaged registry: what is wrong, and how to get the jobs back."""
    if damage.kind == "newer":
        return RegistryError(
            f"the job registry was {damage.detail}",
            where=str(path),
            hint="upgrade boxtune, or point BOXTUNE_HOME at another directory",
            kind="newer",
        )
    backup = describe_backup(path)
    if damage.kind == "missing" and backup is None:
        return RegistryError(
            "the job registry was removed while boxtune was using it",
            where=str(path),
            hint="run the command again: boxtune creates an empty registry",
            kind="missing",
        )
    if damage.kind == "missing":
        message = "the job registry is missing, but boxtune's backup of it exists"
    else:
        message = f"the job registry is damaged: {damage.detail}; boxtune will not use it"
    return RegistryError(
        message, where=str(path), hint=_recovery_hint(path, backup), kind=damage.kind
    )


def _recovery_hint(path: Path, backup: BackupInfo | None) -> str:
    aside = f"{path.name}.damaged-<time>"
    if backup is not None and backup.usable:
        return (
            f"boxtune keeps a backup: {backup.describe()}. `boxtune jobs recover` restores it, "
            f"moving the damaged file (with its -wal/-shm) aside to {aside}; nothing is deleted"
        )
    return (
        f"{_no_usable_backup(path, backup)}. `boxtune jobs recover --empty` moves the damaged "
        f"file aside to {aside} and starts an empty registry; `sqlite3 <that file> .recover` "
        "may salvage rows from it"
    )


def _no_usable_backup(path: Path, backup: BackupInfo | None) -> str:
    if backup is None:
        return f"there is no backup ({backup_path(path)} does not exist)"
    return f"the backup {backup.path} is damaged too ({backup.problem})"


def _operational_error(
    exc: sqlite3.Error, path: Path, timeout_s: float | None = None
) -> RegistryError:
    if _is_busy(exc):
        waited = f" for more than {timeout_s:g} s" if timeout_s is not None else ""
        return RegistryError(
            f"the job registry is locked: another process held it{waited}",
            where=str(path),
            hint="another boxtune process (a job supervisor, the SDK) or an `sqlite3` shell "
            f"holds a write transaction on it; retry once it ends (`fuser {path}` lists the "
            "processes that have it open)",
            kind="locked",
        )
    name = _error_name(exc) or type(exc).__name__
    hint = {
        "SQLITE_FULL": "free space on the disk that holds BOXTUNE_HOME, then retry",
        "SQLITE_READONLY": "make the file and BOXTUNE_HOME writable, or point BOXTUNE_HOME "
        "at a writable directory",
    }.get(
        name,
        "check the file and its directory (permissions, free space, `dmesg` for disk "
        "errors), then retry",
    )
    return RegistryError(
        f"the job registry cannot be used: {exc} ({name})",
        where=str(path),
        hint=hint,
        kind="unavailable",
    )


# -- the once-per-process integrity check --------------------------------------------------------
# path -> the file's identity when it last passed the check (inode, size, mtime, ctime).
_verified: dict[str, tuple[int, int, int, int]] = {}


def _file_key(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def forget_checks() -> None:
    """Check every registry file again on its next use (tests; after a recovery)."""
    _verified.clear()


def ensure_sound(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise a :class:`RegistryError` unless ``path`` passed the check, as it is now.

    ``PRAGMA quick_check`` runs once per process for each state of the file: the result is
    kept for the file's identity (inode, size, mtime, ctime), which any change outside this
    process alters, so each short-lived connection costs one ``stat``.
    """
    key = _file_key(path)
    if key is not None and _verified.get(str(path)) == key:
        return
    damage = diagnose(path, timeout_s)
    if damage is not None:
        _verified.pop(str(path), None)
        raise damage_error(path, damage)
    if key is not None:
        _verified[str(path)] = key


def trust_own_write(path: Path) -> None:
    """After our own committed write the file differs from what was checked only by what
    SQLite wrote: keep it verified instead of paying quick_check on the next connection."""
    key = _file_key(path)
    if key is not None:
        _verified[str(path)] = key


def _sqlite_error(exc: sqlite3.Error, path: Path, timeout_s: float) -> RegistryError:
    """An error raised while using the registry, as the clear error users see."""
    if _is_corruption(exc) or not path.exists():
        _verified.pop(str(path), None)
        damage = diagnose(path, timeout_s) or Damage("corrupt", f"SQLite reported: {exc}")
        return damage_error(path, damage)
    return _operational_error(exc, path, timeout_s)


@contextmanager
def connect(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[sqlite3.Connection]:
    """A short-lived read-write connection (rows as :class:`sqlite3.Row`) to the registry
    ``path``, checked first (:func:`ensure_sound`); never creates the file.

    SQLite errors in the block become the :class:`RegistryError` users see, except
    :class:`sqlite3.IntegrityError`.
    """
    ensure_sound(path, timeout_s)
    try:
        conn = sqlite3.connect(_uri(path, "rw"), uri=True, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise _sqlite_error(exc, path, timeout_s) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        yield conn
    except sqlite3.IntegrityError:
        raise  # a constraint, not damage: the caller decides what it means
    except sqlite3.DatabaseError as exc:
        raise _sqlite_error(exc, path, timeout_s) from exc
    finally:
        conn.close()


# -- creating, backing up and restoring the file -------------------------------------------------
def _remove_side_files(db: Path) -> None:
    """Remove what SQLite may leave next to the temp database ``db`` (-wal, -shm, -journal)."""
    for leftover in (*_companions(db), db.with_name(db.name + "-journal")):
        leftover.unlink(missing_ok=True)


def _remove_temp(tmp: Path) -> None:
    tmp.unlink(missing_ok=True)
    _remove_side_files(tmp)


def _place_new_file(tmp: Path, target: Path) -> bool:
    """Put ``tmp`` at ``target`` unless something is already there (another process was
    first); returns whether ours was placed."""
    try:
        os.link(tmp, target)  # atomic and never replaces: a live registry is never clobbered
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():  # no hard links here (some network file systems): best effort
            return False
        os.replace(tmp, target)
    return True


def create_registry(path: Path) -> bool:
    """Create an empty registry at ``path`` whole, or leave the one another process made."""
    tmp = new_temp_file(path)
    try:
        with closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        return _place_new_file(tmp, path)
    finally:
        _remove_temp(tmp)


def open_registry(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Make ``path`` a sound registry of the current schema before its first use: create it
    (whole) when there is none, check it, and bring a registry from before ``user_version``
    was set up to date.

    A registry that is missing while its backup exists was deleted, not never made: that is a
    :class:`RegistryError`, never a silent start-over.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        if backup_path(path).exists():
            raise damage_error(path, Damage("missing", "the file does not exist"))
        create_registry(path)
    with connect(path, timeout_s) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION:  # a registry from before user_version was set
        with connect(path, timeout_s) as conn:
            conn.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        trust_own_write(path)


def _backup_interval_s() -> float:
    try:
        return float(os.environ.get(BACKUP_INTERVAL_ENV, BACKUP_INTERVAL_S))
    except ValueError:
        return BACKUP_INTERVAL_S


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def backup_due(path: Path) -> bool:
    """Whether the backup should be refreshed: it is missing, or the registry (or its WAL)
    changed after it was taken and it is at least ``BACKUP_INTERVAL_S`` old (60 s; the
    environment variable ``BOXTUNE_REGISTRY_BACKUP_INTERVAL_S`` overrides it).

    The rule reads only mtimes, so every process agrees on it without talking to the others,
    and costs three ``stat`` calls. A backup is stamped with the time its snapshot began, so a
    change made during the copy still counts as newer. Changes since the last backup are at
    risk for at most the interval plus the time until the next operation (any process's
    write, or any opening of the registry); the damage error says when the backup was taken.
    """
    taken_at = _mtime(backup_path(path))
    if taken_at is None:
        return True
    newest = max(_mtime(path) or 0.0, _mtime(_companions(path)[0]) or 0.0)
    return newest > taken_at and time.time() - taken_at >= _backup_interval_s()


def take_backup(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> BackupInfo:
    """Copy the registry to its backup with SQLite's backup API (a consistent snapshot while
    others write), check the copy, then rename it over the previous backup.

    A copy that fails the check never replaces the backup: a damaged registry cannot destroy
    the good copy of it.
    """
    ensure_sound(path, timeout_s)
    target = backup_path(path)
    started = time.time()
    try:
        with atomic_path(target) as tmp:  # it replaces the backup only if the block succeeds
            damage = _snapshot(path, tmp, timeout_s)
            if damage is not None:
                _verified.pop(str(path), None)  # the source must be checked again, too
                raise RegistryError(
                    f"the backup was not refreshed: the copy failed its check ({damage.detail})",
                    where=str(path),
                    hint=f"the previous backup {target} is kept; run `boxtune jobs list` to "
                    "check the registry itself",
                    kind="corrupt",
                )
            os.utime(tmp, (started, started))
    except sqlite3.DatabaseError as exc:
        raise _sqlite_error(exc, path, timeout_s) from exc
    jobs, endpoints = _count_rows(target)
    return BackupInfo(target, started, jobs, endpoints)


def _snapshot(path: Path, tmp: Path, timeout_s: float) -> Damage | None:
    """Copy the registry ``path`` into the empty file ``tmp``; what is wrong with the copy, or
    None."""
    try:
        with (
            closing(sqlite3.connect(_uri(path, "rw"), uri=True, timeout=timeout_s)) as source,
            closing(sqlite3.connect(tmp, isolation_level=None)) as copy,
        ):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # a plain file: reading it adds no -wal
        return diagnose(tmp, timeout_s)
    finally:
        _remove_side_files(tmp)


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_registry` did."""

    action: Literal["healthy", "restored", "emptied"]
    path: Path
    moved: tuple[Path, ...] = ()
    jobs: int = 0
    endpoints: int = 0
    backup: BackupInfo | None = None


def recover_registry(path: Path | None = None, *, empty: bool = False) -> Recovery:
    """Make a damaged (or missing) registry usable again, deleting nothing.

    The damaged file and its -wal/-shm move aside to ``<name>.damaged-<time>`` (SQLite
    finds the -wal there under the same suffix); then the backup is restored, or with
    ``empty`` an empty registry is started (only when there is no usable backup).
    """
    path = Path(path) if path else registry_path()
    damage = diagnose(path)
    backup = describe_backup(path)
    if damage is None:
        from boxtune.jobs.store import Registry  # opening it as every use does (upgrade, backup)

        jobs, endpoints = Registry(path).counts()
        return Recovery("healthy", path, jobs=jobs, endpoints=endpoints, backup=backup)
    if damage.kind == "missing" and backup is None:
        return Recovery("healthy", path)  # nothing yet: the first use creates it
    if damage.kind == "newer":
        raise damage_error(path, damage)
    if empty:
        return _start_empty(path, backup)
    if backup is None or not backup.usable:
        raise RegistryError(
            f"the job registry cannot be restored: {_no_usable_backup(path, backup)}",
            where=str(path),
            hint="`boxtune jobs recover --empty` moves the damaged file aside and starts an "
            "empty registry",
            kind=damage.kind,
        )
    return _restore(path, backup)


def _restore(path: Path, backup: BackupInfo) -> Recovery:
    tmp = new_temp_file(path)
    try:
        with (
            closing(sqlite3.connect(_uri(backup.path, "ro"), uri=True)) as source,
            closing(sqlite3.connect(tmp, isolation_level=None)) as restored,
        ):
            source.backup(restored)
            restored.execute("PRAGMA journal_mode=WAL")
        damage = diagnose(tmp)
        if damage is not None:
            raise RegistryError(
                f"the restored copy failed its check ({damage.detail})",
                where=str(backup.path),
                hint="nothing was changed; `boxtune jobs recover --empty` starts an empty "
                "registry instead",
                kind="corrupt",
            )
        # A stale -wal next to the restored file would be replayed into it: move it too.
        moved = _move_aside(path)
        if not _place_new_file(tmp, path):
            raise RegistryError(
                "another process created a registry while it was being restored",
                where=str(path),
                hint="stop the other boxtune processes and run `boxtune jobs recover` again",
                kind="unavailable",
            )
    finally:
        _remove_temp(tmp)
    _verified.pop(str(path), None)
    return Recovery(
        "restored", path, moved, jobs=backup.jobs, endpoints=backup.endpoints, backup=backup
    )


def _start_empty(path: Path, backup: BackupInfo | None) -> Recovery:
    if backup is not None and backup.usable:
        raise RegistryError(
            f"a usable backup exists: {backup.describe()}",
            where=str(path),
            hint="run `boxtune jobs recover` without --empty to restore it (move the backup "
            "away first if you really want an empty registry)",
            kind="unavailable",
        )
    moved = _move_aside(path)
    if backup is not None:  # damaged too: keep it, but out of the way of the new backups
        moved += _move_aside(backup.path)
    create_registry(path)
    _verified.pop(str(path), None)
    return Recovery("emptied", path, moved, backup=backup)


def _move_aside(path: Path) -> tuple[Path, ...]:
    """Rename ``path`` and its -wal/-shm to ``<name>.damaged-<time>[-wal|-shm]``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    counter = 1
    while any(p.exists() for p in (aside, *_companions(aside))):
        counter += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{counter}")
    moved = []
    for source, target in zip(
        (path, *_companions(path)), (aside, *_companions(aside)), strict=True
    ):
        if source.exists():
            os.replace(source, target)
            moved.append(target)
    return tuple(moved)

"""The job registry: training jobs and endpoints in one SQLite file under ``BOXTUNE_HOME``.

Many processes touch it at once (the SDK, each job's supervisor, the CLI), so the
database runs in WAL mode, every operation opens a short-lived connection, and state changes
are conditional updates (``... WHERE status IN (...)``) that cannot overwrite a newer state.

The file itself (created whole, checked before use, backed up, recovered) is
:mod:`boxtune.jobs.registry_file`'s job; this module holds the records, their names and the
:class:`Registry` that reads and writes them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from boxtune.errors import BoxtuneError, BoxtuneWarning
from boxtune.jobs.registry_file import (
    DEFAULT_TIMEOUT_S,
    BackupInfo,
    backup_due,
    backup_path,
    connect,
    open_registry,
    registry_path,
    take_backup,
    trust_own_write,
)

QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "queued", "running", "completed", "failed", "stopped"
JOB_STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, STOPPED)
ACTIVE_JOB_STATUSES = (QUEUED, RUNNING)

STARTING = "starting"
ENDPOINT_STATUSES = (STARTING, RUNNING, FAILED, STOPPED)
ACTIVE_ENDPOINT_STATUSES = (STARTING, RUNNING)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9])*$")
MAX_NAME_LENGTH = 63


def validate_name(name: str, what: str = "job") -> str:
    """The managed platform's naming rule: letters, digits and hyphens, at most 63 chars."""
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME_PATTERN.match(name):
        raise BoxtuneError(
            f"invalid {what} name {name!r}",
            hint=f"use 1-{MAX_NAME_LENGTH} letters, digits and hyphens, starting and ending "
            "with a letter or digit (e.g. my-detector-2024-05-01)",
        )
    return name


_stamp_lock = threading.Lock()
_last_stamp_ms = 0


def _next_stamp_ms() -> int:
    """The current millisecond, but never the same one twice in this process (threads that
    name jobs at the same moment get distinct names)."""
    global _last_stamp_ms
    with _stamp_lock:
        _last_stamp_ms = max(time.time_ns() // 1_000_000, _last_stamp_ms + 1)
        return _last_stamp_ms


def _stamped_name(base: str, stamp_ms: int, max_length: int = MAX_NAME_LENGTH) -> str:
    # Integer arithmetic: a float timestamp can render 123 ms as "122".
    when = datetime.fromtimestamp(stamp_ms // 1000, UTC).replace(microsecond=stamp_ms % 1000 * 1000)
    stamp = when.strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", base).strip("-") or "boxtune"
    return f"{cleaned[: max_length - len(stamp) - 1].rstrip('-')}-{stamp}"


def name_from_base(base: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``base`` plus a millisecond timestamp, like the managed SDK's ``name_from_base``.

    Unique within a process; across processes, :meth:`Registry.claim_name` makes it unique.
    """
    return _stamped_name(base, _next_stamp_ms(), max_length)


# A name claim only has to outlive the gap between claiming a name and inserting the record.
NAME_CLAIM_TTL_S = 24 * 3600.0


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    name: str
    status: str
    model_id: str | None
    base_model: str | None
    hyperparameters: dict[str, str]
    inputs: dict[str, str]
    output_path: str | None
    model_data: str | None
    work_dir: str
    log_path: str
    command: list[str]
    pid: int | None = None
    pid_started: str | None = None
    child_pid: int | None = None
    exit_code: int | None = None
    failure_reason: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    source: str | None = None
    metrics: list[dict] = field(default_factory=list)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("created_at", "started_at", "ended_at"):
            data[key] = _iso(data[key])
        data["duration_s"] = None if self.duration_s is None else round(self.duration_s, 1)
        return data


@dataclass
class EndpointRecord:
    name: str
    status: str
    model: str
    model_id: str | None
    job_name: str | None
    host: str
    port: int
    backend: str | None
    log_path: str
    command: list[str]
    pid: int | None = None
    pid_started: str | None = None
    failure_reason: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_ENDPOINT_STATUSES

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("created_at", "started_at", "ended_at"):
            data[key] = _iso(data[key])
        data["url"] = self.url
        return data


_JSON_COLUMNS = {"hyperparameters", "inputs", "command"}


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}


def _decode_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for key in _JSON_COLUMNS & data.keys():
        data[key] = json.loads(data[key]) if data[key] else ({} if key != "command" else [])
    return data


# -- the registry -------------------------------------------------------------------------------
class Registry:
    """Short transactions over the SQLite file; safe to use from many processes.

    Opening checks the file and creates it, whole, when there is none
    (:func:`~boxtune.jobs.registry_file.open_registry`); every connection re-checks it when it
    changed (:func:`~boxtune.jobs.registry_file.connect`), so no write lands in a damaged file.
    """

    def __init__(self, path: Path | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.path = Path(path) if path else registry_path()
        self.timeout_s = timeout_s
        open_registry(self.path, timeout_s)
        self._refresh_backup()

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, self.timeout_s)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: read-then-write decisions stay consistent."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                _rollback_quietly(conn)
                raise
            conn.execute("COMMIT")
        trust_own_write(self.path)
        self._refresh_backup()

    def backup(self) -> BackupInfo:
        """Refresh the backup now (it is otherwise refreshed at most once per interval)."""
        return take_backup(self.path, self.timeout_s)

    def _refresh_backup(self) -> None:
        """Take the backup when it is due (:func:`backup_due`); an empty registry needs none.
        A failure warns but never fails the caller's work (its write is committed already)."""
        if not backup_due(self.path):
            return
        try:
            if not backup_path(self.path).exists() and self.counts() == (0, 0):
                return
            take_backup(self.path, self.timeout_s)
        except (BoxtuneError, OSError, sqlite3.Error) as exc:
            warnings.warn(
                BoxtuneWarning(f"the job registry's backup was not refreshed: {exc}"),
                stacklevel=3,
            )

    def counts(self) -> tuple[int, int]:
        """How many jobs and endpoints the registry holds."""
        with self._connect() as conn:
            jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            endpoints = conn.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0]
        return jobs, endpoints

    # -- names --------------------------------------------------------------------------------
    def claim_name(self, base: str, kind: Literal["job", "endpoint"] = "job") -> str:
        """A ``name_from_base(base)`` name that no job or endpoint has and no other process
        will get: it is recorded as claimed in the same write transaction that checks it.

        Two processes naming a job in the same millisecond get consecutive milliseconds.
        """
        table = "jobs" if kind == "job" else "endpoints"
        stamp_ms = _next_stamp_ms()
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS name_claims "
                "(name TEXT PRIMARY KEY, claimed_at REAL NOT NULL)"
            )  # registries created before name claims existed
            now = time.time()
            conn.execute("DELETE FROM name_claims WHERE claimed_at < ?", (now - NAME_CLAIM_TTL_S,))
            while True:
                name = _stamped_name(base, stamp_ms)
                taken = conn.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone()
                if not taken:
                    try:
                        conn.execute("INSERT INTO name_claims VALUES (?, ?)", (name, now))
                        return name
                    except sqlite3.IntegrityError:
                        pass  # claimed by another process a moment ago
                stamp_ms += 1

    # -- jobs ---------------------------------------------------------------------------------
    def insert_job(self, job: JobRecord) -> None:
        values = _encode({k: getattr(job, k) for k in JobRecord.__dataclass_fields__})
        values.pop("metrics")
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        try:
            with self.transaction() as conn:
                conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", values)
        except sqlite3.IntegrityError as exc:
            raise BoxtuneError(
                f"a training job named {job.name!r} already exists",
                hint="pick another job_name (or leave it out to get a timestamped one); "
                "`boxtune jobs list` shows the existing ones",
            ) from exc

    def get_job(self, name: str) -> JobRecord | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
        return JobRecord(**_decode_row(row)) if row else None

    def list_jobs(self, statuses: Sequence[str] | None = None, limit: int | None = None):
        query, params = "SELECT * FROM jobs", []
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params.extend(statuses)
        query += " ORDER BY created_at DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._connect() as conn:
            rows = conn.execute(query, params).fetchall()
        return [JobRecord(**_decode_row(row)) for row in rows]

    def update_job(
        self, name: str, *, when_status: Sequence[str] | None = None, **values: Any
    ) -> bool:
        """Set ``values``; with ``when_status`` only if the job is in one of those states.

        Returns whether a row changed (False: the job had already moved on).
        """
        with self.transaction() as conn:
            return _conditional_update(conn, "jobs", name, when_status, values)

    # -- endpoints ----------------------------------------------------------------------------
    def insert_endpoint(self, endpoint: EndpointRecord) -> None:
        values = _encode({k: getattr(endpoint, k) for k in EndpointRecord.__dataclass_fields__})
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self.transaction() as conn:
            # A stopped or failed endpoint's name is free again, as on the managed platform.
            existing = conn.execute(
                "SELECT status FROM endpoints WHERE name = ?", (endpoint.name,)
            ).fetchone()
            if existing and existing["status"] in ACTIVE_ENDPOINT_STATUSES:
                raise BoxtuneError(
                    f"an endpoint named {endpoint.name!r} is already {existing['status']}",
                    hint="pick another endpoint_name, or stop the old one with "
                    f"`boxtune endpoints stop {endpoint.name}`",
                )
            conn.execute("DELETE FROM endpoints WHERE name = ?", (endpoint.name,))
            conn.execute(f"INSERT INTO endpoints ({columns}) VALUES ({marks})", values)

    def get_endpoint(self, name: str) -> EndpointRecord | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchone()
        return EndpointRecord(**_decode_row(row)) if row else None

    def list_endpoints(self, statuses: Sequence[str] | None = None) -> list[EndpointRecord]:
        query, params = "SELECT * FROM endpoints", []
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params.extend(statuses)
        query += " ORDER BY created_at DESC"
        with self._connect() as conn:
            rows = conn.execute(query, params).fetchall()
        return [EndpointRecord(**_decode_row(row)) for row in rows]

    def update_endpoint(
        self, name: str, *, when_status: Sequence[str] | None = None, **values: Any
    ) -> bool:
        with self.transaction() as conn:
            return _conditional_update(conn, "endpoints", name, when_status, values)

    def delete_endpoint(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back after an error; on a damaged file the rollback may fail too, and the first
    error is the one to report."""
    with suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _conditional_update(
    conn: sqlite3.Connection,
    table: str,
    name: str,
    when_status: Sequence[str] | None,
    values: dict[str, Any],
) -> bool:
    values = _encode(values)
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    query = f"UPDATE {table} SET {assignments} WHERE name = :_name"
    params = {**values, "_name": name}
    if when_status:
        marks = ", ".join(f":_s{i}" for i in range(len(when_status)))
        query += f" AND status IN ({marks})"
        params.update({f"_s{i}": s for i, s in enumerate(when_status)})
    return conn.execute(query, params).rowcount > 0

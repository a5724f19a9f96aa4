"""The job registry: training jobs and endpoints in one SQLite file under ``BOXTUNE_HOME``.

Many processes touch it at once (the SDK, each job's supervisor, the CLI), so the
database runs in WAL mode, every operation opens a short-lived connection, and state changes
are conditional updates (``... WHERE status IN (...)``) that cannot overwrite a newer state.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boxtune.errors import BoxtuneError
from boxtune.paths import boxtune_home

QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "queued", "running", "completed", "failed", "stopped"
JOB_STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, STOPPED)
ACTIVE_JOB_STATUSES = (QUEUED, RUNNING)

STARTING = "starting"
ENDPOINT_STATUSES = (STARTING, RUNNING, FAILED, STOPPED)
ACTIVE_ENDPOINT_STATUSES = (STARTING, RUNNING)

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
"""

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


def name_from_base(base: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``base`` plus a millisecond timestamp, like the managed SDK's ``name_from_base``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", base).strip("-") or "boxtune"
    return f"{cleaned[: max_length - len(stamp) - 1].rstrip('-')}-{stamp}"


def registry_path() -> Path:
    return boxtune_home() / "registry.sqlite3"


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


class Registry:
    """Short transactions over the SQLite file; safe to use from many processes."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else registry_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BoxtuneError(
                    f"the job registry was written by a newer boxtune (schema {version})",
                    where=str(self.path),
                    hint="upgrade boxtune, or point BOXTUNE_HOME at another directory",
                )
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: read-then-write decisions stay consistent."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

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

"""The job registry never loses jobs silently: each attack on ``registry.sqlite3`` (emptied,
truncated, overwritten, bit-flipped, deleted, locked, named concurrently) is reproduced on real
files with real processes, and must end in a precise error, untouched bytes and a full recovery.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from boxtune.cli import main
from boxtune.errors import BoxtuneError
from boxtune.jobs import registry_file, store
from boxtune.jobs.registry_file import RegistryError
from boxtune.jobs.store import JobRecord, Registry

STAMPED = re.compile(r"^boxtune-job-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{3}$")


@pytest.fixture(autouse=True)
def fresh_checks():
    """Each test starts like a new process: no registry file is known to be sound yet."""
    registry_file.forget_checks()
    yield
    registry_file.forget_checks()


def make_job(name: str) -> JobRecord:
    return JobRecord(
        name=name,
        status="completed",
        model_id="pytorch-od1-ssdlite320",
        base_model=None,
        # A marker stored only in the table's rows (no index holds it): tests find pages by it.
        hyperparameters={"marker": f"payload-{name}", "epochs": "3"},
        inputs={"training": "/data/train"},
        output_path=None,
        model_data=None,
        work_dir=f"/tmp/{name}",
        log_path=f"/tmp/{name}/job.log",
        command=["boxtune", "train"],
        created_at=time.time(),
    )


def fill(count: int) -> tuple[Registry, list[str]]:
    """A registry holding ``count`` jobs and a backup of all of them."""
    registry = Registry()
    names = [f"job-{i:04d}" for i in range(count)]
    for name in names:
        registry.insert_job(make_job(name))
    registry.backup()
    return registry, names


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real `boxtune` command in its own process (BOXTUNE_HOME comes from the test)."""
    return subprocess.run(
        [sys.executable, "-m", "boxtune.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def directory(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


# Byte ranges of a b-tree page: its header (page type, counts) and its cell pointer array.
PAGE_HEADER, CELL_POINTERS = range(0, 12), range(8, 24)


def flip_a_table_page(path: Path, job_name: str, where: range = PAGE_HEADER) -> int:
    """Invert bytes of the table page holding ``job_name``'s row, as a disk or a bad copy
    would; returns SQLite's number of that page."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    page = data.index(f"payload-{job_name}".encode()) // page_size
    assert page > 0  # not the first page: its 100-byte file header stays valid
    for offset in where:
        data[page * page_size + offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return page + 1


def damaged_message(path: Path, detail: str) -> str:
    return f"{path}: the job registry is damaged: {detail}; boxtune will not use it"


def check_failed(path: Path) -> str:
    """How the message for a file that fails ``PRAGMA quick_check`` begins."""
    return f"{path}: the job registry is damaged: the integrity check (PRAGMA quick_check) failed: "


# -- a 0-byte file ------------------------------------------------------------------------------
def test_zero_byte_registry_is_an_error_naming_the_backup_and_recover_restores_all(capsys):
    registry, names = fill(12)
    path = registry.path
    path.write_bytes(b"")  # the attack: the registry emptied (a crash while copying it)
    before = directory(path)

    with pytest.raises(RegistryError) as caught:
        Registry()
    error = caught.value
    assert error.kind == "empty"
    assert str(error).splitlines()[0] == damaged_message(
        path,
        "the file is empty (0 bytes); boxtune never leaves it empty, so its contents were "
        "lost (a crash or a full disk while copying or restoring it, or a truncation)",
    )
    backup = registry_file.backup_path(path)
    assert f"boxtune keeps a backup: {backup} (12 jobs, 0 endpoints, taken " in error.hint
    assert "`boxtune jobs recover` restores it" in error.hint

    # The command, in its own process: exit 1, the same message, no traceback.
    listed = cli("jobs", "list")
    assert listed.returncode == 1
    assert listed.stderr == f"error: {error}\n"  # no traceback, nothing else
    assert listed.stdout == ""
    # Nothing was written into it, nothing was left next to it.
    assert path.read_bytes() == b"" and directory(path) == before

    assert main(["jobs", "recover"]) == 0
    out = capsys.readouterr().out
    kept = re.search(r"kept aside: (\S+)", out).group(1)
    assert re.fullmatch(re.escape(str(path)) + r"\.damaged-\d{8}-\d{6}", kept)
    assert Path(kept).read_bytes() == b""  # the damaged file is kept, as it was
    assert f"restored {path} from the backup {backup} (12 jobs, 0 endpoints" in out
    assert sorted(j.name for j in Registry().list_jobs()) == names
    listed = cli("jobs", "list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in names)


def test_a_new_registry_is_created_whole_never_as_an_empty_file(boxtune_home):
    registry = Registry()
    assert registry.path.stat().st_size > 0
    assert registry.path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert directory(registry.path) == {"registry.sqlite3"}  # no temp file, no empty backup
    assert registry_file.diagnose(registry.path) is None


# -- a truncated file ---------------------------------------------------------------------------
def test_truncated_registry_is_refused_even_by_a_process_that_checked_it_before(capsys):
    registry, names = fill(300)
    path = registry.path
    size = path.stat().st_size
    os.truncate(path, size // 2)  # the attack, while this process already uses the registry
    digest = sha(path)

    with pytest.raises(RegistryError) as caught:
        registry.insert_job(make_job("written-after-the-damage"))
    message = str(caught.value).splitlines()[0]
    assert message.startswith(check_failed(path))
    assert message.endswith("; boxtune will not use it")
    assert f"(the file is {size // 2} bytes, its header says {size}: it was truncated)" in message
    assert caught.value.kind == "corrupt"
    assert "(300 jobs, 0 endpoints, taken " in caught.value.hint
    assert sha(path) == digest  # the refused write left the file as it was

    assert main(["jobs", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and "Traceback" not in err
    assert main(["jobs", "recover"]) == 0
    capsys.readouterr()
    assert sorted(j.name for j in Registry().list_jobs()) == names


# -- garbage bytes, and no backup ----------------------------------------------------------------
def test_garbage_registry_without_backup_needs_recover_empty_and_is_kept(capsys):
    registry, _ = fill(3)
    registry_file.backup_path(registry.path).unlink()
    garbage = b"PK\x03\x04 not a database " * 400
    registry.path.write_bytes(garbage)

    assert main(["jobs", "list"]) == 1
    err = capsys.readouterr().err
    path, backup = registry.path, registry_file.backup_path(registry.path)
    detail = "the file is not an SQLite database (it starts with b'PK\\x03\\x04 not a datab')"
    assert err.splitlines()[0] == f"error: {damaged_message(path, detail)}"
    assert err.splitlines()[1] == (
        f"hint: there is no backup ({backup} does not exist). `boxtune jobs recover --empty` "
        "moves the damaged file aside to registry.sqlite3.damaged-<time> and starts an empty "
        "registry; `sqlite3 <that file> .recover` may salvage rows from it"
    )
    with pytest.raises(RegistryError, match="not an SQLite database"):
        Registry().insert_job(make_job("new"))
    assert path.read_bytes() == garbage

    assert main(["jobs", "recover"]) == 1  # no backup: an empty start must be asked for
    err = capsys.readouterr().err
    assert f"the job registry cannot be restored: there is no backup ({backup}" in err
    assert path.read_bytes() == garbage

    assert main(["jobs", "recover", "--empty"]) == 0
    out = capsys.readouterr().out
    kept = Path(re.search(r"kept aside: (\S+)", out).group(1))
    assert kept.read_bytes() == garbage
    assert f"started an empty registry at {path}" in out
    fresh = Registry()
    assert fresh.list_jobs() == []
    fresh.insert_job(make_job("after-recovery"))
    assert [j.name for j in Registry().list_jobs()] == ["after-recovery"]


# -- bit-flipped pages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "reported"),
    [
        (PAGE_HEADER, "database disk image is malformed; boxtune will not use it"),
        # SQLite words it "On tree page N cell" or "Tree T page N cell", as the bytes fall.
        (CELL_POINTERS, "page {page} cell "),
    ],
    ids=["page-header", "cell-pointers"],
)
def test_bit_flipped_registry_refuses_every_write_and_keeps_its_bytes(capsys, where, reported):
    registry, names = fill(400)
    path = registry.path
    page = flip_a_table_page(path, "job-0200", where)
    digest, before = sha(path), directory(path)

    with pytest.raises(RegistryError) as caught:
        Registry()
    message = str(caught.value).splitlines()[0]
    assert message.startswith(check_failed(path))
    assert reported.format(page=page) in message  # quick_check's own first lines
    assert len(message) < 400  # the first lines of its report, not all of them
    assert "(400 jobs, 0 endpoints, taken " in caught.value.hint
    # Writes from other processes are refused too: the CLI (stop) and the SDK's insert.
    stop = cli("jobs", "stop", "job-0001")
    # quick_check's wording of the same damage can differ between processes: compare the start.
    assert stop.returncode == 1
    assert stop.stderr.startswith(f"error: {path}: the job registry is damaged: "), stop.stderr
    assert "Traceback" not in stop.stderr
    insert = subprocess.run(
        [
            sys.executable,
            "-c",
            "from boxtune.jobs.store import Registry; from tests.sdk.test_registry_safety "
            "import make_job; Registry().insert_job(make_job('sneaked-in'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert insert.returncode == 1 and "RegistryError" in insert.stderr
    assert sha(path) == digest and directory(path) == before

    assert main(["jobs", "recover"]) == 0
    capsys.readouterr()
    assert sorted(j.name for j in Registry().list_jobs()) == names


def test_damage_found_during_an_operation_is_the_same_clear_error(boxtune_home):
    registry, _ = fill(400)
    flip_a_table_page(registry.path, "job-0200")
    with pytest.raises(RegistryError) as on_open:
        Registry()
    # Damage the once-per-process check did not see (the file was trusted, e.g. bit rot that
    # leaves mtime alone): the query that meets the bad page raises the same error.
    registry_file._verified[str(registry.path)] = registry_file._file_key(registry.path)
    with pytest.raises(RegistryError) as on_read:
        registry.list_jobs()
    assert str(on_read.value) == str(on_open.value)
    assert isinstance(on_read.value.__cause__, sqlite3.DatabaseError)


# -- the backup ---------------------------------------------------------------------------------
def test_the_backup_is_never_replaced_by_a_damaged_copy(boxtune_home):
    registry, _ = fill(200)
    backup = registry_file.backup_path(registry.path)
    good = sha(backup)
    flip_a_table_page(registry.path, "job-0100")

    with pytest.raises(RegistryError, match="quick_check"):
        registry_file.take_backup(registry.path)  # the registry's own check stops it
    assert sha(backup) == good

    # Even when the damage went unnoticed, the copy is checked before it replaces the backup.
    registry_file._verified[str(registry.path)] = registry_file._file_key(registry.path)
    with pytest.raises(RegistryError) as caught:
        registry_file.take_backup(registry.path)
    assert str(caught.value).startswith(
        f"{registry.path}: the backup was not refreshed: the copy failed its check "
        "(the integrity check (PRAGMA quick_check) failed: "
    )
    assert f"the previous backup {backup} is kept" in caught.value.hint
    assert sha(backup) == good
    assert directory(registry.path) <= {"registry.sqlite3", "registry.sqlite3.backup"} | {
        "registry.sqlite3-wal",
        "registry.sqlite3-shm",
    }  # no temp copy left behind
    info = registry_file.describe_backup(registry.path)
    assert info.usable and info.jobs == 200


def test_the_backup_follows_changes_at_most_once_per_interval(boxtune_home):
    registry = Registry()
    assert not registry_file.backup_path(registry.path).exists()  # an empty registry needs none
    registry.insert_job(make_job("first"))
    backup = registry_file.backup_path(registry.path)
    assert registry_file.describe_backup(registry.path).jobs == 1  # missing: taken at once
    registry.insert_job(make_job("second"))
    assert registry_file.describe_backup(registry.path).jobs == 1  # within the interval: not yet

    old = time.time() - registry_file.BACKUP_INTERVAL_S - 1
    os.utime(backup, (old, old))
    Registry()  # any process opening the registry takes the due backup
    info = registry_file.describe_backup(registry.path)
    assert info.jobs == 2 and info.taken_at > old + 30
    assert backup.read_bytes()[18:20] == b"\x01\x01"  # a plain file: reading it adds no -wal
    assert not Path(f"{backup}-wal").exists()


def test_a_deleted_registry_is_not_silently_started_over(capsys):
    registry, names = fill(5)
    registry.path.unlink()
    with pytest.raises(RegistryError) as caught:
        Registry()
    assert str(caught.value).splitlines()[0] == (
        f"{registry.path}: the job registry is missing, but boxtune's backup of it exists"
    )
    assert "(5 jobs, 0 endpoints, taken " in caught.value.hint
    assert not registry.path.exists()
    assert main(["jobs", "recover"]) == 0
    assert "restored" in capsys.readouterr().out
    assert sorted(j.name for j in Registry().list_jobs()) == names


def test_recover_moves_the_wal_and_shm_aside_with_the_damaged_file(capsys):
    registry, names = fill(3)
    path = registry.path
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    holder = sqlite3.connect(path)  # an open connection keeps the -wal/-shm in place
    holder.execute("SELECT COUNT(*) FROM jobs").fetchone()
    registry.insert_job(make_job("only-in-the-wal"))
    left_over = {wal: wal.read_bytes(), shm: shm.read_bytes()}
    holder.close()
    # The attack: a process died leaving its WAL, and the main file was emptied.
    path.write_bytes(b"")
    for side_file, data in left_over.items():
        side_file.write_bytes(data)
    wal_digest = sha(wal)
    assert len(left_over[wal]) > 0

    assert main(["jobs", "recover"]) == 0
    kept = re.findall(r"kept aside: (\S+)", capsys.readouterr().out)
    aside = kept[0]
    assert kept == [aside, f"{aside}-wal", f"{aside}-shm"]
    assert sha(Path(f"{aside}-wal")) == wal_digest
    assert not wal.exists() or sha(wal) != wal_digest  # never replayed into the restored file
    assert sorted(j.name for j in Registry().list_jobs()) == names
    assert registry_file.diagnose(path) is None


def test_recover_leaves_a_sound_registry_alone(capsys):
    registry, _ = fill(2)
    digest = sha(registry.path)
    assert main(["jobs", "recover"]) == 0
    assert "the registry is sound (2 jobs, 0 endpoints); nothing to recover" in (
        capsys.readouterr().out
    )
    assert sha(registry.path) == digest
    assert not any(".damaged-" in name for name in directory(registry.path))


def test_recover_empty_refuses_while_a_usable_backup_exists(capsys):
    registry, _ = fill(4)
    registry.path.write_bytes(b"")
    assert main(["jobs", "recover", "--empty"]) == 1
    assert "a usable backup exists: " in capsys.readouterr().err
    assert registry.path.read_bytes() == b""


def test_a_newer_schema_is_refused_and_not_recovered(capsys):
    registry, _ = fill(1)
    with sqlite3.connect(registry.path) as conn:
        conn.execute(f"PRAGMA user_version = {registry_file.SCHEMA_VERSION + 1}")
    registry_file.forget_checks()
    with pytest.raises(RegistryError, match=r"written by a newer boxtune \(schema 2\)"):
        Registry()
    assert main(["jobs", "recover"]) == 1
    assert "upgrade boxtune" in capsys.readouterr().err


def test_a_foreign_database_is_an_unknown_schema(boxtune_home):
    path = boxtune_home / "registry.sqlite3"
    boxtune_home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(RegistryError) as caught:
        Registry()
    assert str(caught.value).splitlines()[0] == damaged_message(
        path,
        "unknown schema version 0 with the tables photos: it is not a boxtune job registry",
    )


# -- locks --------------------------------------------------------------------------------------
def test_a_locked_registry_is_a_clear_error(boxtune_home):
    registry = Registry(timeout_s=0.2)
    holder = sqlite3.connect(registry.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        with pytest.raises(RegistryError) as caught:
            registry.insert_job(make_job("blocked"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.kind == "locked"
    assert str(caught.value).splitlines()[0] == (
        f"{registry.path}: the job registry is locked: another process held it for more than 0.2 s"
    )
    assert f"`fuser {registry.path}`" in caught.value.hint
    registry.insert_job(make_job("blocked"))  # once released, the write goes through
    assert registry.get_job("blocked") is not None


# -- names --------------------------------------------------------------------------------------
def _submit_auto_named(home: str, start: multiprocessing.synchronize.Event, count: int) -> None:
    os.environ["BOXTUNE_HOME"] = home
    start.wait(30)
    registry = Registry()  # all at once: the registry file is also created concurrently
    for _ in range(count):
        registry.insert_job(make_job(registry.claim_name("boxtune-job")))


def test_48_concurrent_auto_named_submissions_get_distinct_names(boxtune_home):
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_submit_auto_named, args=(str(boxtune_home), start, 12))
        for _ in range(4)
    ]
    for process in workers:
        process.start()
    time.sleep(1.0)  # let every interpreter reach the start line
    start.set()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    names = [job.name for job in Registry().list_jobs()]
    assert len(names) == 48 and len(set(names)) == 48
    assert all(STAMPED.match(name) and len(name) <= 63 for name in names)


def test_a_claimed_name_skips_existing_and_claimed_names(monkeypatch, boxtune_home):
    registry = Registry()
    stamp = 1_715_240_125_123
    monkeypatch.setattr(store, "_next_stamp_ms", lambda: stamp)
    taken = store._stamped_name("boxtune-job", stamp)
    assert taken == "boxtune-job-2024-05-09-07-35-25-123"
    registry.insert_job(make_job(taken))  # an explicit name holding that millisecond
    assert registry.claim_name("boxtune-job") == "boxtune-job-2024-05-09-07-35-25-124"
    assert registry.claim_name("boxtune-job") == "boxtune-job-2024-05-09-07-35-25-125"
    assert registry.claim_name("ep", "endpoint") == "ep-2024-05-09-07-35-25-123"
    # A name the user chose is never changed: it is an error when it exists.
    with pytest.raises(BoxtuneError, match=f"a training job named '{taken}' already exists"):
        registry.insert_job(make_job(taken))


def test_name_from_base_never_repeats_within_a_process():
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: store.name_from_base("boxtune-job"), range(2000)))
    assert len(set(names)) == 2000
    assert all(STAMPED.match(name) for name in names)

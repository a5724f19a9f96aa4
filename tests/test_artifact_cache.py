"""Loading a model.tar.gz: extraction limits, manifest-listed files only, the shared cache
(concurrent loaders, list, prune, size cap)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
from tests.fake_engine import FakeDetector

from boxtune import cache, fileio
from boxtune.artifacts import MANIFEST_FILE, TARBALL_FILE, load_artifact, write_artifact
from boxtune.cli import main
from boxtune.errors import BoxtuneWarning, ModelError
from boxtune.labels import LabelMap

LABELS = LabelMap.from_categories({1: "bolt"})
PAYLOAD = {"weights.bin": os.urandom(1 << 20), "extra/config.json": b'{"a": 1}'}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    cache.release_pins()


class FilesDetector(FakeDetector):
    """Exports the files of ``PAYLOAD`` (or ``files``)."""

    def __init__(self, files: dict[str, bytes] | None = None):
        super().__init__(LABELS, 64)
        self.files = PAYLOAD if files is None else files

    def export(self, directory: Path) -> list[str]:
        for name, data in self.files.items():
            path = Path(directory) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return list(self.files)


def _artifact(tmp_path: Path, name: str = "model", files: dict[str, bytes] | None = None) -> Path:
    return write_artifact(FilesDetector(files), tmp_path / name) / TARBALL_FILE


def _handmade_tarball(path: Path, files: dict[str, bytes], *, listed: set[str] | None = None):
    """A tarball with a manifest listing ``listed`` (default: all) of ``files``, as an
    attacker who knows the format would write it."""
    listed = set(files) if listed is None else listed
    manifest = {
        "format": "boxtune-model",
        "format_version": 1,
        "model_id": "pytorch-od1-efficientdet-lite0-320",
        "engine": "fake",
        "family": "fake",
        "architecture": {"name": "fake"},
        "num_classes": 1,
        "image_size": 64,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files.items()
            if name in listed
        },
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**files, MANIFEST_FILE: json.dumps(manifest).encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _labels_file() -> bytes:
    return json.dumps(LABELS.to_json()).encode()


def _cache_files(home: Path) -> list[str]:
    """Everything under the cache except its lock files (bookkeeping without content)."""
    root = home / "artifacts"
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".locks" not in p.relative_to(root).parts
    )


# --- limits ---------------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_anything_is_written(tmp_path, home, monkeypatch):
    """64 MiB of zeros gzip to ~64 KiB: the manifest-declared total is checked first."""
    bomb = _handmade_tarball(
        tmp_path / "bomb.tar.gz",
        {"labels_info.json": _labels_file(), "weights.bin": bytes(64 << 20)},
    )
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setenv("BOXTUNE_MAX_ARCHIVE_BYTES", str(16 << 20))
    with pytest.raises(ModelError) as info:
        load_artifact(bomb)
    message = str(info.value)
    assert "the files add up to 64.0 MiB, over the limit of 16.0 MiB" in message
    assert str(bomb) in message and "BOXTUNE_MAX_ARCHIVE_BYTES" in message
    assert _cache_files(home) == []


def test_one_oversized_member_is_refused(tmp_path, home, monkeypatch):
    bomb = _handmade_tarball(tmp_path / "big.tar.gz", {"weights.bin": bytes(8 << 20)})
    monkeypatch.setenv("BOXTUNE_MAX_ARCHIVE_MEMBER_BYTES", str(1 << 20))
    with pytest.raises(
        ModelError, match=r"entry 'weights.bin' is 8.0 MiB, over the limit of 1.0 MiB per file"
    ):
        load_artifact(bomb)
    assert _cache_files(home) == []


def test_a_member_flood_is_refused_after_the_limit_not_after_reading_it_all(tmp_path, home):
    flood = tmp_path / "flood.tar.gz"
    with tarfile.open(flood, "w:gz") as tar:
        for index in range(12_000):
            tar.addfile(tarfile.TarInfo(f"f{index}"), io.BytesIO(b""))
    started = time.perf_counter()
    with pytest.raises(ModelError, match="more than 10000 entries") as info:
        load_artifact(flood)
    assert time.perf_counter() - started < 10
    assert "BOXTUNE_MAX_ARCHIVE_MEMBERS" in str(info.value)
    assert _cache_files(home) == []


def test_a_sparse_member_is_refused(tmp_path, home):
    """GNU tar stores a 1 GiB hole in a few bytes; extracting it would write a GiB."""
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "weights.bin", "wb") as handle:
        handle.truncate(1 << 30)
    (source / MANIFEST_FILE).write_text("{}")
    sparse = tmp_path / "sparse.tar.gz"
    subprocess.run(
        ["tar", "--sparse", "-czf", str(sparse), "-C", str(source), "weights.bin", MANIFEST_FILE],
        check=True,
    )
    assert sparse.stat().st_size < 1 << 20
    with pytest.raises(ModelError, match=r"'weights.bin' in the archive \(a sparse file\)"):
        load_artifact(sparse)
    assert _cache_files(home) == []


def test_a_tarball_without_a_manifest_is_refused(tmp_path, home):
    tarball = tmp_path / "plain.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("weights.bin"), io.BytesIO(b""))
    with pytest.raises(ModelError, match=f"the archive holds no {MANIFEST_FILE}"):
        load_artifact(tarball)


def test_a_member_whose_size_differs_from_the_manifest_is_refused(tmp_path, home):
    files = {"labels_info.json": _labels_file(), "weights.bin": b"x" * 100}
    tarball = _handmade_tarball(tmp_path / "t.tar.gz", files)
    # Rewrite with a longer weights.bin but the old manifest.
    with tarfile.open(tarball) as tar:
        manifest = tar.extractfile(MANIFEST_FILE).read()
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in {**files, "weights.bin": b"x" * 5000, MANIFEST_FILE: manifest}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(
        ModelError, match=r"'weights.bin' is 5000 bytes in the archive, 100 expected"
    ):
        load_artifact(tarball)


def test_not_enough_free_space_is_said_as_such(tmp_path, home, monkeypatch):
    """A 2 MiB tmpfs as BOXTUNE_HOME when this machine lets the test mount one, else a file
    system that reports 2 MiB free."""
    tarball = _artifact(tmp_path, files={"weights.bin": os.urandom(3 << 20)})
    small = tmp_path / "small"
    small.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True
        ).returncode
        == 0
    )
    try:
        if not mounted:
            usage = fileio.shutil.disk_usage
            monkeypatch.setattr(
                fileio.shutil, "disk_usage", lambda p: usage(p)._replace(free=2 << 20)
            )
        monkeypatch.setenv("BOXTUNE_HOME", str(small / "home"))
        with pytest.raises(ModelError) as info:
            load_artifact(tarball)
        message = str(info.value)
        assert "extracting needs 3.0 MiB but only" in message and "is free" in message
        assert "boxtune cache prune" in message
        assert _cache_files(small / "home") == []
    finally:
        cache.release_pins()  # the pin files are open on the tmpfs
        if mounted:
            subprocess.run(["umount", str(small)], check=True)


def test_disk_full_while_extracting_is_not_called_damage(tmp_path, home, monkeypatch):
    """The free-space check can be outrun by another writer: ENOSPC mid-write is reported as a
    full disk (with the path), and the partial extraction is removed."""
    tarball = _artifact(tmp_path)
    real_copy = fileio.shutil.copyfileobj

    def copy_until_full(source, out, length=0):
        if out.name.endswith("weights.bin"):
            raise OSError(28, "No space left on device", out.name)
        return real_copy(source, out, length)

    monkeypatch.setattr(fileio.shutil, "copyfileobj", copy_until_full)
    with pytest.raises(Exception) as info:
        load_artifact(tarball)
    message = str(info.value)
    assert "failed: the disk is full" in message and "weights.bin" in message
    assert "damaged" not in message
    assert _cache_files(home) == []


# --- only what the manifest lists -----------------------------------------------------------


def test_files_the_manifest_does_not_list_are_not_extracted(tmp_path, home):
    files = {"labels_info.json": _labels_file(), "weights.bin": b"w", "model.onnx": b"evil"}
    tarball = _handmade_tarball(
        tmp_path / "t.tar.gz", files, listed={"labels_info.json", "weights.bin"}
    )
    with pytest.warns(
        BoxtuneWarning,
        match=r"left out 1 file\(s\) its boxtune-model.json does not list: model.onnx",
    ):
        artifact = load_artifact(tarball)
    assert not (artifact.directory / "model.onnx").exists()
    assert artifact.optional_file("model.onnx") is None
    with pytest.raises(ModelError, match=r"model\.onnx is not listed in boxtune-model\.json"):
        artifact.file("model.onnx")


def test_an_unlisted_file_in_an_artifact_directory_is_never_loaded(tmp_path, home):
    """A manifest that simply omits model.onnx must not let a tampered model.onnx load."""
    directory = _artifact(tmp_path).parent
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / "model.onnx").write_bytes(b"tampered")
    artifact = load_artifact(directory)
    assert "model.onnx" not in manifest["files"]
    with pytest.raises(
        ModelError,
        match=r"model\.onnx is present but not listed in boxtune-model\.json, so it cannot be "
        "trusted",
    ):
        artifact.optional_file("model.onnx")
    (directory / "extra" / "sneaky.py").write_text("import os")
    with pytest.raises(ModelError, match=r"extra/sneaky.py is present but not listed"):
        artifact.subtree("extra")


def test_the_torch_engine_refuses_an_unlisted_model_onnx(tmp_path, home):
    from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
    from boxtune.engines import get_engine

    engine = get_engine("torch")
    directory = write_artifact(
        engine.create(get_spec(DEFAULT_MODEL_ID), LABELS, image_size=64), tmp_path / "m"
    )
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    del manifest["files"]["model.onnx"]
    fileio.atomic_write_json(directory / MANIFEST_FILE, manifest)
    with pytest.raises(ModelError, match=r"model\.onnx is present but not listed"):
        engine.load_runner(load_artifact(directory))
    (directory / "model.onnx").unlink()  # without it, the torch backend serves the weights
    assert type(engine.load_runner(load_artifact(directory))).__name__ == "TorchRunner"


# --- the shared cache -----------------------------------------------------------------------

_LOADER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    start = Path(sys.argv[2])
    while not start.exists():
        time.sleep(0.005)
    from boxtune.artifacts import load_artifact
    art = load_artifact(sys.argv[1])
    print(art.directory, len(art.files), (art.directory / "weights.bin").stat().st_size)
    """
)


def _loaders(tarball: Path, count: int, start: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return [
        subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(tarball), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]


def test_six_concurrent_loaders_three_rounds_share_one_extraction(tmp_path, home):
    tarball = _artifact(tmp_path, files={"weights.bin": os.urandom(8 << 20)})
    for round_ in range(3):
        start = tmp_path / f"start-{round_}"
        processes = _loaders(tarball, 6, start)
        time.sleep(1.0)  # all six are waiting for the start signal
        start.touch()
        results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
        assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
        directories = {out.split()[0] for _, out, _ in results}
        assert len(directories) == 1
        assert {out.split()[2] for _, out, _ in results} == {str(8 << 20)}
        entries = cache.list_entries()
        assert [e.key for e in entries] == [Path(directories.pop()).name]
        assert not list((home / "artifacts").glob(".*.partial-*"))
        # The loaders have exited: nothing holds the entry, so the next round extracts again.
        assert [e.key for e in cache.prune().removed] == [entries[0].key]


def test_six_concurrent_loaders_of_one_s3_artifact_download_it_once_per_change(tmp_path, home):
    from tests.s3_server import S3Server, s3_environment

    from boxtune import storage

    with S3Server(log_path=tmp_path / "moto.log") as server, s3_environment(server):
        server.create_bucket("models")
        for round_ in range(3):
            directory = _artifact(
                tmp_path, f"m{round_}", files={"weights.bin": os.urandom(4 << 20)}
            ).parent
            storage.upload(directory, "s3://models/current", last=(TARBALL_FILE, MANIFEST_FILE))
            start = tmp_path / f"s3-start-{round_}"
            processes = _loaders("s3://models/current", 6, start)
            time.sleep(1.0)
            start.touch()
            results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
            assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
            assert {out.split()[2] for _, out, _ in results} == {str(4 << 20)}
            downloads = home / "downloads" / "artifact"
            assert not list(downloads.glob(".*.partial-*"))
            assert len([p for p in downloads.iterdir() if p.is_dir() and p.name != ".locks"]) == 1


def test_a_killed_extraction_leaves_nothing_that_is_reused(tmp_path, home):
    tarball = _artifact(tmp_path)
    key = fileio.sha256_file(tarball)[: cache.KEY_LENGTH]
    leftover = home / "artifacts" / f".{key}.partial-dead"
    (leftover / "extra").mkdir(parents=True)
    (leftover / "weights.bin").write_bytes(b"half")
    incomplete = home / "artifacts" / key
    incomplete.mkdir()
    (incomplete / "weights.bin").write_bytes(b"half")  # no manifest: not complete
    artifact = load_artifact(tarball)
    assert artifact.directory == incomplete
    assert (incomplete / "weights.bin").read_bytes() == PAYLOAD["weights.bin"]
    assert not leftover.exists()


def test_cache_list_and_prune_keep_entries_in_use(tmp_path, home, capsys):
    first, second = _artifact(tmp_path, "a"), _artifact(tmp_path, "b", files={"weights.bin": b"2"})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from boxtune.artifacts import load_artifact; "
            "load_artifact(sys.argv[1]); print('loaded', flush=True); sys.stdin.read()",
            str(first),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "loaded"
        load_artifact(second)
        cache.release_pins()  # this process is done with the second one
        assert main(["cache", "list"]) == 0
        listing = capsys.readouterr().out
        assert listing.count("pytorch-od1-efficientdet-lite0-320") == 2
        assert "IN USE" in listing and "yes" in listing and "2 entries" in listing
        assert main(["cache", "prune"]) == 0
        out = capsys.readouterr().out
        first_key = fileio.sha256_file(first)[: cache.KEY_LENGTH]
        second_key = fileio.sha256_file(second)[: cache.KEY_LENGTH]
        assert f"removed {second_key}" in out
        assert f"kept {first_key} (pytorch-od1-efficientdet-lite0-320): in use" in out
        assert [e.key for e in cache.list_entries()] == [first_key]
    finally:
        holder.communicate("", timeout=30)
    assert main(["cache", "prune", "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert [e["key"] for e in pruned["removed"]] == [first_key]
    assert cache.list_entries() == []


def test_prune_rejects_a_bad_size(capsys):
    assert main(["cache", "prune", "--max-size", "lots"]) == 1
    assert "--max-size: 'lots' is not a size" in capsys.readouterr().err


def test_the_size_cap_evicts_the_least_recently_used_entry(tmp_path, home, monkeypatch):
    tarballs = [
        _artifact(tmp_path, f"m{i}", files={"weights.bin": os.urandom(1 << 20)}) for i in range(3)
    ]
    monkeypatch.setenv("BOXTUNE_CACHE_MAX_BYTES", "2.5MB")
    keys = []
    for tarball in tarballs:
        keys.append(load_artifact(tarball).directory.name)
        cache.release_pins()  # as separate processes would: nothing stays in use
        time.sleep(0.05)  # distinct last-use times
    assert sorted(e.key for e in cache.list_entries()) == sorted(keys[1:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20GB", 20 << 30), ("500M", 500 << 20), ("1.5 GiB", 3 << 29), ("1234", 1234), ("0", 0)],
)
def test_parse_size(text, expected):
    assert cache.parse_size(text) == expected

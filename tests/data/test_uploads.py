"""A dataset sent as a zip: ``fileio.extract_zip`` checks every entry before writing one, and
``data.uploads.import_dataset_zip`` places the dataset only when the whole zip is good."""

from __future__ import annotations

import shutil
import struct
import warnings
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from boxtune import fileio
from boxtune.data import generate_sample_dataset, validate_dataset
from boxtune.data.uploads import import_dataset_zip
from boxtune.errors import DatasetError

LIMITS = fileio.ArchiveLimits()


def write_zip(path: Path, entries, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """``entries``: (name or ZipInfo, bytes) pairs, in order; duplicates allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, content in entries:
                archive.writestr(name, content)
    return path


def with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = mode << 16
    return info


def set_flag_bits(path: Path, bits: int) -> None:
    """Set general-purpose flag bits on every entry, in the local and central headers."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            (flags,) = struct.unpack_from("<H", data, start + offset)
            struct.pack_into("<H", data, start + offset, flags | bits)
            start += 4
    path.write_bytes(bytes(data))


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    """A folder that holds one file already: a failed extraction must leave it as it was."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "kept.txt").write_text("before")
    return folder


def refused(zip_path: Path, destination: Path, kind: str, needle: str, limits=LIMITS) -> str:
    before = snapshot(destination)
    with pytest.raises(fileio.ArchiveError) as caught:
        fileio.extract_zip(zip_path, destination, limits)
    assert caught.value.kind == kind, caught.value
    assert needle in str(caught.value), str(caught.value)
    assert snapshot(destination) == before
    assert sorted(p.name for p in destination.iterdir()) == ["kept.txt"]
    return str(caught.value)


# --- extract_zip -------------------------------------------------------------------------------


def test_extracts_regular_files_and_skips_archiver_litter(tmp_path: Path, destination: Path):
    zip_path = write_zip(
        tmp_path / "good.zip",
        [
            ("images/", b""),
            ("images/a.jpg", b"a" * 1000),
            ("notes/readme.txt", b"hello"),
            ("__MACOSX/images/._a.jpg", b"fork"),
            ("__MACOSX/", b""),
            (".DS_Store", b"finder"),
            ("images/.DS_Store", b"finder"),
            (".git/config", b"[core]"),
            ("images/.ipynb_checkpoints/a-checkpoint.jpg", b"copy"),
            (with_mode("mode.txt", 0o100644), b"unix regular file"),
        ],
    )
    names = fileio.extract_zip(zip_path, destination, LIMITS)
    assert names == ["images/a.jpg", "notes/readme.txt", "mode.txt"]
    assert snapshot(destination) == {
        "kept.txt": b"before",
        "images/a.jpg": b"a" * 1000,
        "notes/readme.txt": b"hello",
        "mode.txt": b"unix regular file",
    }
    assert not (destination / "__MACOSX").exists()
    assert not (destination / ".git").exists()


def test_plain_zipfile_permissions_are_regular_files(tmp_path: Path):
    """``ZipFile.writestr(name, ...)`` stores mode 0o600 with no file-type bits; Windows zips
    store none at all. Both are plain files, not something exotic."""
    zip_path = write_zip(tmp_path / "plain.zip", [("a.txt", b"x")])
    assert zipfile.ZipFile(zip_path).infolist()[0].external_attr >> 16 == 0o600
    no_mode = zipfile.ZipInfo("b.txt")
    no_mode.create_system = 0
    write_zip(tmp_path / "dos.zip", [(no_mode, b"y")])
    assert fileio.extract_zip(zip_path, tmp_path / "one", LIMITS) == ["a.txt"]
    assert fileio.extract_zip(tmp_path / "dos.zip", tmp_path / "two", LIMITS) == ["b.txt"]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../evil.txt", "'../evil.txt' would land outside"),
        ("images/../../evil.txt", "would land outside"),
        ("/etc/evil.txt", "'/etc/evil.txt' would land outside"),
        ("\\evil.txt", "would land outside"),
        ("images\\..\\..\\evil.txt", "backslash"),
        ("images/./a.jpg", "'.'"),
        ("images//a.jpg", "empty"),
    ],
)
def test_unsafe_names(tmp_path: Path, destination: Path, name: str, needle: str):
    zip_path = write_zip(tmp_path / "bad.zip", [("images/ok.jpg", b"ok"), (name, b"evil")])
    refused(zip_path, destination, "unsafe", needle)
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry(tmp_path: Path, destination: Path):
    zip_path = write_zip(
        tmp_path / "link.zip",
        [("images/ok.jpg", b"ok"), (with_mode("images/a.jpg", 0o120777), b"/etc/passwd")],
    )
    refused(zip_path, destination, "unsafe", "'images/a.jpg' is a symbolic link")


@pytest.mark.parametrize("mode", [0o010644, 0o060644, 0o140755], ids=["fifo", "block", "socket"])
def test_special_file_entries(tmp_path: Path, destination: Path, mode: int):
    zip_path = write_zip(tmp_path / "special.zip", [(with_mode("images/a.jpg", mode), b"")])
    refused(zip_path, destination, "unsafe", "not a regular file")


def test_encrypted_entry(tmp_path: Path, destination: Path):
    zip_path = write_zip(tmp_path / "secret.zip", [("images/a.jpg", b"x" * 100)])
    set_flag_bits(zip_path, 0x1)
    assert zipfile.ZipFile(zip_path).infolist()[0].flag_bits & 0x1
    refused(zip_path, destination, "unsafe", "'images/a.jpg' is encrypted")


def test_member_size_limit(tmp_path: Path, destination: Path):
    zip_path = write_zip(
        tmp_path / "big.zip", [("small.txt", b"x" * 10), ("big.bin", b"\0" * 5000)]
    )
    limits = fileio.ArchiveLimits(max_member_bytes=4096)
    message = refused(zip_path, destination, "limit", "'big.bin' is 4.9 KiB", limits)
    assert "4.0 KiB per file" in message
    # At the limit exactly is fine.
    assert fileio.extract_zip(
        zip_path, destination / "ok", fileio.ArchiveLimits(max_member_bytes=5000)
    ) == ["small.txt", "big.bin"]


def test_total_size_limit(tmp_path: Path, destination: Path):
    """A bomb of small members: each under the per-file limit, the sum over the total."""
    entries = [(f"part{i}.bin", b"\0" * 1000) for i in range(10)]
    zip_path = write_zip(tmp_path / "bomb.zip", entries)
    limits = fileio.ArchiveLimits(max_member_bytes=1000, max_total_bytes=9999)
    message = refused(zip_path, destination, "limit", "add up to 9.8 KiB unpacked", limits)
    assert "9.8 KiB" in message
    limits = fileio.ArchiveLimits(max_member_bytes=1000, max_total_bytes=10_000)
    assert len(fileio.extract_zip(zip_path, destination / "ok", limits)) == 10


def test_skipped_entries_do_not_count_towards_the_total(tmp_path: Path):
    zip_path = write_zip(
        tmp_path / "mac.zip", [("a.txt", b"x" * 100), ("__MACOSX/._a.txt", b"\0" * 10_000)]
    )
    limits = fileio.ArchiveLimits(max_member_bytes=200, max_total_bytes=200)
    assert fileio.extract_zip(zip_path, tmp_path / "out", limits) == ["a.txt"]


def test_member_count_limit(tmp_path: Path, destination: Path):
    zip_path = write_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(6)])
    refused(
        zip_path, destination, "limit", "more than 5 entries", fileio.ArchiveLimits(max_members=5)
    )


def test_not_enough_disk(tmp_path: Path, destination: Path, monkeypatch: pytest.MonkeyPatch):
    zip_path = write_zip(tmp_path / "a.zip", [("a.bin", b"\0" * 4096)])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    refused(zip_path, destination, "disk", "needs 4.0 KiB but only 100 B is free")


def test_duplicate_names(tmp_path: Path):
    zip_path = write_zip(tmp_path / "dup.zip", [("images/a.jpg", b"one"), ("images/a.jpg", b"two")])
    with pytest.raises(fileio.ArchiveError) as caught:
        fileio.extract_zip(zip_path, tmp_path / "out", LIMITS)
    assert caught.value.kind == "unsafe"
    assert "'images/a.jpg' appears twice" in str(caught.value)
    assert (tmp_path / "out" / "images" / "a.jpg").read_bytes() == b"one"  # not overwritten


@pytest.mark.parametrize(
    "entries",
    [
        [("images", b"a file"), ("images/a.jpg", b"x")],
        [("images/a.jpg", b"x"), ("images", b"a file")],
    ],
    ids=["file-then-inside", "inside-then-file"],
)
def test_a_file_and_a_folder_of_the_same_name(tmp_path: Path, entries):
    zip_path = write_zip(tmp_path / "clash.zip", entries)
    with pytest.raises(fileio.ArchiveError) as caught:
        fileio.extract_zip(zip_path, tmp_path / "out", LIMITS)
    assert caught.value.kind == "unsafe"


def test_not_a_zip(tmp_path: Path, destination: Path):
    (tmp_path / "text.zip").write_text("just text")
    refused(tmp_path / "text.zip", destination, "damaged", "not a readable zip file")
    refused(tmp_path / "missing.zip", destination, "damaged", "not a readable zip file")


def test_truncated_zip(tmp_path: Path, destination: Path):
    zip_path = write_zip(tmp_path / "whole.zip", [("a.bin", bytes(range(256)) * 40)])
    data = zip_path.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.zip", destination, "damaged", "not a readable zip file")


def test_corrupt_member(tmp_path: Path):
    content = b"boxtune" * 200
    zip_path = write_zip(tmp_path / "crc.zip", [("a.bin", content)], zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    data[data.find(content) + 100] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    with pytest.raises(fileio.ArchiveError) as caught:
        fileio.extract_zip(zip_path, tmp_path / "out", LIMITS)
    assert caught.value.kind == "damaged"
    assert "cannot read 'a.bin'" in str(caught.value)


# --- import_dataset_zip ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample_dataset(tmp_path_factory.mktemp("shapes") / "shapes", images=4, seed=5)


def dataset_entries(folder: Path, prefix: str = "") -> list[tuple[str, bytes]]:
    return [
        (prefix + p.relative_to(folder).as_posix(), p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def test_import_at_top_level(tmp_path: Path, shapes: Path):
    zip_path = write_zip(tmp_path / "shapes.zip", dataset_entries(shapes))
    target = tmp_path / "datasets" / "mine"
    assert import_dataset_zip(zip_path, target) == target
    assert snapshot(target) == snapshot(shapes)
    assert validate_dataset(target).ok
    assert sorted(p.name for p in target.parent.iterdir()) == ["mine"]  # no staging left


def test_import_from_one_folder_down(tmp_path: Path, shapes: Path):
    entries = [*dataset_entries(shapes, "shapes/"), ("__MACOSX/shapes/._x", b"fork")]
    zip_path = write_zip(tmp_path / "shapes.zip", entries)
    target = tmp_path / "datasets" / "mine"
    import_dataset_zip(zip_path, target)
    assert snapshot(target) == snapshot(shapes)
    assert sorted(p.name for p in target.parent.iterdir()) == ["mine"]


def test_import_takes_the_shallowest_dataset(tmp_path: Path, shapes: Path):
    entries = [*dataset_entries(shapes), *dataset_entries(shapes, "backup/")]
    target = tmp_path / "datasets" / "mine"
    import_dataset_zip(write_zip(tmp_path / "two.zip", entries), target)
    assert (target / "backup" / "annotations.json").is_file()
    assert (target / "annotations.json").read_bytes() == (shapes / "annotations.json").read_bytes()


def failed_import(zip_path: Path, tmp_path: Path, **kwargs) -> DatasetError:
    target = tmp_path / "datasets" / "mine"
    with pytest.raises(DatasetError) as caught:
        import_dataset_zip(zip_path, target, **kwargs)
    assert not target.exists()
    parent = target.parent
    assert not parent.exists() or list(parent.iterdir()) == [], list(parent.iterdir())
    return caught.value


def test_import_refuses_unsafe_zip(tmp_path: Path, shapes: Path):
    entries = [*dataset_entries(shapes), ("../escape.txt", b"x")]
    error = failed_import(write_zip(tmp_path / "evil.zip", entries), tmp_path, shown_name="e.zip")
    assert error.message.startswith("cannot unpack the zip: entry '../escape.txt'")
    assert error.where == "e.zip"
    assert "zip the dataset folder" in error.hint
    assert isinstance(error.__cause__, fileio.ArchiveError) and error.__cause__.kind == "unsafe"
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "datasets" / "escape.txt").exists()


def test_import_refuses_damaged_member_and_leaves_nothing(tmp_path: Path, shapes: Path):
    entries = dataset_entries(shapes)
    zip_path = write_zip(tmp_path / "crc.zip", entries, zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    last = entries[-1][1]
    data[data.rfind(last) + len(last) // 2] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    error = failed_import(zip_path, tmp_path)
    assert error.__cause__.kind == "damaged"
    assert error.where == str(zip_path)


def test_import_applies_the_limits(tmp_path: Path, shapes: Path):
    zip_path = write_zip(tmp_path / "shapes.zip", dataset_entries(shapes))
    error = failed_import(zip_path, tmp_path, limits=fileio.ArchiveLimits(max_total_bytes=1000))
    assert error.__cause__.kind == "limit"
    assert "over the limit" in error.message


def test_import_reads_the_limits_from_the_environment(
    tmp_path: Path, shapes: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BOXTUNE_MAX_ARCHIVE_MEMBERS", "2")
    zip_path = write_zip(tmp_path / "shapes.zip", dataset_entries(shapes))
    error = failed_import(zip_path, tmp_path)
    assert "more than 2 entries" in error.message


def test_import_without_annotations_lists_what_it_holds(tmp_path: Path):
    entries = [(f"photos/img{i:02d}.jpg", b"x") for i in range(10)]
    error = failed_import(write_zip(tmp_path / "photos.zip", entries), tmp_path)
    assert error.message.startswith("the zip holds no annotations.json (it holds: ")
    assert "photos/img00.jpg" in error.message and "and 2 more" in error.message
    assert "images/" in error.hint


def test_import_of_an_empty_zip(tmp_path: Path):
    error = failed_import(write_zip(tmp_path / "empty.zip", []), tmp_path)
    assert "(it holds: nothing)" in error.message


def test_import_refuses_a_dataset_nested_deep(tmp_path: Path, shapes: Path):
    zip_path = write_zip(tmp_path / "deep.zip", dataset_entries(shapes, "a/b/"))
    error = failed_import(zip_path, tmp_path)
    assert "nested too deep in the zip (a/b/annotations.json)" in error.message


def test_import_never_replaces_an_existing_folder(tmp_path: Path, shapes: Path):
    zip_path = write_zip(tmp_path / "shapes.zip", dataset_entries(shapes))
    target = tmp_path / "datasets" / "mine"
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep")
    with pytest.raises(DatasetError, match="exists already"):
        import_dataset_zip(zip_path, target)
    assert snapshot(target) == {"mine.txt": b"keep"}


def test_import_of_a_file_that_is_no_zip(tmp_path: Path):
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04garbage")
    error = failed_import(tmp_path / "fake.zip", tmp_path, shown_name="fake.zip")
    assert "not a readable zip file" in error.message
    assert error.__cause__.kind == "damaged"

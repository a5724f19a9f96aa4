"""Hostile and broken dataset files: each is a DatasetError naming the file, never a traceback.

A 200 000-deep nested annotations.json (``json.loads`` raises RecursionError), the same depth
in the other files boxtune parses (COCO JSON, YOLO data.yaml, an artifact's labels_info.json),
an annotations.json that is a folder, one that cannot be read, one that is not UTF-8, and image
files that are a pipe or too big to read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from boxtune.cli import main
from boxtune.data import read_dataset
from boxtune.data.images import check_file, inspect_image
from boxtune.data.importers import convert
from boxtune.errors import DatasetError, ModelError
from boxtune.labels import LabelMap

DEPTH = 200_000
DEEP_JSON = "[" * DEPTH + "]" * DEPTH
NESTED = "nested too deeply to read"


def _deep_annotations() -> str:
    return '{"images": ' + DEEP_JSON + ', "annotations": []}'


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_deeply_nested_annotations_are_a_dataset_error(raw_dataset):
    root = raw_dataset({}, _deep_annotations())
    before = _tree_digest(root)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    err = caught.value
    assert err.where == str(root / "annotations.json")
    assert err.message.startswith(NESTED)
    assert "damaged or hostile" in (err.hint or "")
    assert _tree_digest(root) == before  # nothing written, nothing lost


def test_data_validate_reports_the_nesting_without_a_traceback(raw_dataset, capsys):
    root = raw_dataset({}, _deep_annotations())
    assert main(["data", "validate", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'annotations.json'}: {NESTED}")
    assert "Traceback" not in err


def test_deeply_nested_coco_json_is_refused_and_writes_nothing(tmp_path):
    src = tmp_path / "coco.json"
    src.write_text('{"images": ' + DEEP_JSON + "}")
    dst = tmp_path / "out"
    with pytest.raises(DatasetError) as caught:
        convert("coco", src, dst)
    assert caught.value.where == str(src) and caught.value.message.startswith(NESTED)
    assert sorted(os.listdir(tmp_path)) == ["coco.json"]  # no dst, no partial folder


def test_deeply_nested_yolo_yaml_is_refused(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "data.yaml").write_text("names: " + DEEP_JSON + "\n")
    with pytest.raises(DatasetError) as caught:
        convert("yolo", root, tmp_path / "out")
    assert caught.value.where == str(root / "data.yaml")
    assert caught.value.message.startswith(NESTED)
    assert not (tmp_path / "out").exists()


def test_deeply_nested_label_map_is_a_model_error(tmp_path):
    path = tmp_path / "labels_info.json"
    path.write_text('{"labels": ' + DEEP_JSON + "}")
    with pytest.raises(ModelError) as caught:
        LabelMap.load(path)
    assert caught.value.where == str(path) and caught.value.message.startswith(NESTED)


def test_annotations_that_are_a_folder(raw_dataset):
    root = raw_dataset({}, None)
    (root / "annotations.json").mkdir()
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert "annotations.json: no annotations.json in the dataset" in str(caught.value)


def test_annotations_that_cannot_be_read(raw_dataset, monkeypatch):
    # Tests run as root, who reads a chmod 000 file anyway: the refusal is injected where the
    # validator opens the file, with the errno and path the kernel gives an unprivileged user.
    root = raw_dataset({}, {"images": [], "annotations": []})
    target = root / "annotations.json"
    real_read_text = Path.read_text

    def refuse(self, *args, **kwargs):
        if self == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    err = caught.value
    assert (err.where, err.message) == (
        str(target),
        "reading the dataset failed: permission denied",
    )
    assert err.hint and "chmod" in err.hint


def test_annotations_that_are_not_utf8(raw_dataset):
    root = raw_dataset({}, None)
    (root / "annotations.json").write_bytes(b'{"images": [], "annotations": [], "x": "\xe9"}')
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert (
        "error: annotations.json: not UTF-8 text ('utf-8' codec can't decode byte 0xe9 in "
        "position 40: invalid continuation byte)\n    hint: save the file as UTF-8"
    ) in str(caught.value)


def test_coco_json_that_is_not_utf8(tmp_path):
    src = tmp_path / "coco.json"
    src.write_bytes(b'{"images": [], "x": "\xff"}')
    with pytest.raises(DatasetError) as caught:
        convert("coco", src, tmp_path / "out")
    assert caught.value.where == str(src)
    assert caught.value.message == "not UTF-8 text (byte 0xff at offset 21)"
    assert not (tmp_path / "out").exists()


def test_an_import_into_a_path_under_a_file_is_a_dataset_error(tmp_path):
    src = tmp_path / "coco.json"
    src.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetError) as caught:
        convert("coco", src, blocker / "sub" / "out")
    err = caught.value
    assert err.message == (
        "importing the coco dataset failed: a part of the path is a file, a directory was "
        "expected (Not a directory)"
    )
    assert err.where == str(blocker / "sub")
    assert blocker.read_text() == "x"


def test_an_image_that_is_a_pipe_is_not_read(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)  # opening it would wait for a writer for ever
    with pytest.raises(ValueError) as caught:
        inspect_image(fifo)
    assert caught.value.code == "not-a-file"
    assert "not a regular file" in caught.value.message


def test_an_image_over_the_byte_limit_is_refused_by_its_size(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(3 * 1024 * 1024)  # sparse: takes no disk space
    monkeypatch.setenv("BOXTUNE_MAX_IMAGE_BYTES", str(1024 * 1024))
    with pytest.raises(ValueError) as caught:
        inspect_image(big)
    assert caught.value.code == "too-many-bytes"
    assert caught.value.message == (
        "file is 3,145,728 bytes, over the limit of 1,048,576 bytes (refused before reading it)"
    )
    assert check_file(tmp_path / "big.png", max_bytes=4 * 1024 * 1024) == 3 * 1024 * 1024


def test_an_unreadable_image_says_why(tmp_path, monkeypatch):
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    import PIL.Image

    def refuse(fp, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(fp))

    monkeypatch.setattr(PIL.Image, "open", refuse)
    with pytest.raises(ValueError) as caught:
        inspect_image(image)
    assert caught.value.code == "unreadable-image"
    assert caught.value.message == "reading the image failed: permission denied"


def test_deep_json_fixture_really_recurses():
    """The attack is real: plain json.loads fails on it with RecursionError."""
    with pytest.raises(RecursionError):
        json.loads(DEEP_JSON)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxtune.data import DatasetWriter, read_dataset, write_dataset
from boxtune.errors import DatasetError
from boxtune.labels import LabelMap


def test_read_dataset_gives_records_categories_and_label_map(good_dataset: Path) -> None:
    ds = read_dataset(good_dataset)
    assert ds.root == good_dataset
    assert [r.id for r in ds.images] == [1, 2, 3]
    assert ds.images[0].file_name == "a.png" and (ds.images[0].width, ds.images[0].height) == (
        100,
        80,
    )
    assert ds.categories == {1: "cat", 2: "dog"}
    assert ds.label_map == LabelMap((1, 2), ("cat", "dog"))
    assert [a.bbox for a in ds.boxes_for(1)] == [(10, 10, 50, 40), (60, 20, 90, 70)]
    assert ds.boxes_for(3) == []  # the negative is kept
    boxes, cats = ds.box_array(2)
    assert boxes.shape == (1, 4) and cats.tolist() == [1]
    assert ds.image_path(ds.images[0]) == good_dataset / "images" / "a.png"


def test_names_default_to_category_ids_without_categories(good_dataset: Path) -> None:
    doc = json.loads((good_dataset / "annotations.json").read_text())
    del doc["categories"]
    doc["annotations"][1]["category_id"] = 7
    (good_dataset / "annotations.json").write_text(json.dumps(doc))
    ds = read_dataset(good_dataset)
    assert ds.categories == {1: "1", 7: "7"}
    assert ds.label_map.names == ("1", "7")
    assert ds.label_map.index_of(7) == 1


def test_subset_keeps_categories_and_only_its_boxes(good_dataset: Path) -> None:
    ds = read_dataset(good_dataset)
    sub = ds.subset([2, 3])
    assert [r.id for r in sub.images] == [2, 3]
    assert len(sub.annotations) == 1
    assert sub.label_map == ds.label_map
    with pytest.raises(KeyError):
        ds.subset([99])


def test_write_dataset_round_trips(good_dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(good_dataset)
    out = write_dataset(tmp_path / "copy", ds.subset([1, 3]))
    again = read_dataset(out)
    assert [r.to_json() for r in again.images] == [r.to_json() for r in ds.subset([1, 3]).images]
    assert again.annotations == ds.boxes_for(1)
    assert again.categories == ds.categories


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path: Path, make_image) -> None:
    dst = tmp_path / "out"
    with pytest.raises(RuntimeError), DatasetWriter(dst) as writer:
        writer.add_image("x.png", make_image(10, 10))
        raise RuntimeError("interrupted")
    assert not dst.exists()
    assert not list(tmp_path.iterdir())  # the partial folder is gone too
    with DatasetWriter(dst, categories={1: "a"}) as writer:
        writer.add_image("x.png", make_image(10, 10), boxes=[((1, 1, 5, 5), 1)])
    assert read_dataset(dst).categories == {1: "a"}
    with pytest.raises(DatasetError, match="not empty"), DatasetWriter(dst):
        pass
    with DatasetWriter(dst, overwrite=True) as writer:
        writer.add_image("y.png", make_image(12, 10))
    assert [r.file_name for r in read_dataset(dst).images] == ["y.png"]


def test_read_dataset_raises_listing_every_error(good_dataset: Path) -> None:
    doc = json.loads((good_dataset / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [50, 10, 10, 40]
    doc["annotations"][2]["image_id"] = 42
    (good_dataset / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as info:
        read_dataset(good_dataset)
    text = str(info.value)
    assert "annotations[0]" in text and "annotations[2]" in text
    assert "2 error(s)" in text


def test_read_dataset_from_s3(good_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    from tests.s3_server import S3Server, s3_environment

    from boxtune import storage
    from boxtune.data import validate_dataset

    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    with S3Server() as server, s3_environment(server):
        server.create_bucket("datasets")
        storage.upload(good_dataset, "s3://datasets/pets/train")
        ds = read_dataset("s3://datasets/pets/train")
        assert ds.categories == {1: "cat", 2: "dog"} and len(ds.images) == 3
        assert ds.image_path(ds.images[0]).is_file()
        server.client().delete_object(Bucket="datasets", Key="pets/train/images/b.png")
        report = validate_dataset("s3://datasets/pets/train")
        assert report.root == "s3://datasets/pets/train"
        assert [i.code for i in report.errors] == ["missing-file"]

"""Round trips: the tests write real COCO / VOC / YOLO / PennFudanPed files from a known
dataset, import them, and compare boxes, classes and images with the original."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from boxtune.cli import main as cli
from boxtune.data import read_dataset
from boxtune.data.importers import convert
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> DetectionDataset:
    from boxtune.data import generate_sample_dataset

    root = generate_sample_dataset(tmp_path_factory.mktemp("src") / "ds", images=12, seed=11)
    return read_dataset(root)


def boxes_by_file(ds: DetectionDataset) -> dict[str, list[tuple[tuple[float, ...], str]]]:
    return {
        Path(r.file_name).name: sorted(
            (tuple(round(v, 2) for v in a.bbox), ds.categories[a.category_id])
            for a in ds.boxes_for(r.id)
        )
        for r in ds.images
    }


def assert_same(original: DetectionDataset, imported: DetectionDataset, atol: float) -> None:
    a, b = boxes_by_file(original), boxes_by_file(imported)
    assert a.keys() == b.keys()
    for name in a:
        assert [n for _, n in a[name]] == [n for _, n in b[name]], name
        assert np.allclose(
            [x for x, _ in a[name]] or np.zeros((0, 4)),
            [x for x, _ in b[name]] or np.zeros((0, 4)),
            atol=atol,
        ), name


def write_coco(ds: DetectionDataset, root: Path, crowd: bool = False) -> Path:
    shutil.copytree(ds.root / "images", root / "images")
    anns = []
    for a in ds.annotations:
        x1, y1, x2, y2 = a.bbox
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
        )
    if crowd:
        anns.append(
            {
                "id": 999,
                "image_id": ds.images[0].id,
                "category_id": 1,
                "bbox": [0, 0, 50, 50],
                "area": 2500,
                "iscrowd": 1,
                "segmentation": {"counts": [0, 2500], "size": [50, 50]},
            }
        )
    doc = {
        "info": {"description": "test"},
        "licenses": [],
        "images": [
            {
                "id": r.id,
                "file_name": r.file_name,
                "width": r.width,
                "height": r.height,
                "license": 0,
            }
            for r in ds.images
        ],
        "annotations": anns,
        "categories": [
            {"id": c, "name": n, "supercategory": "shape"} for c, n in ds.categories.items()
        ],
    }
    (root / "instances.json").write_text(json.dumps(doc))
    return root / "instances.json"


def test_coco_round_trip_skips_crowd_with_a_note(source, tmp_path: Path) -> None:
    coco = write_coco(source, tmp_path / "coco", crowd=True)
    notes: list[str] = []
    imported = convert("coco", coco, tmp_path / "out", log=notes.append)
    assert_same(source, imported, atol=0.02)
    assert imported.categories == source.categories
    assert [r.id for r in imported.images] == [r.id for r in source.images]
    assert any("crowd" in n for n in notes)


def test_coco_official_layout_finds_the_split_folder(source, tmp_path: Path) -> None:
    root = tmp_path / "coco2017"
    write_coco(source, root)
    (root / "annotations").mkdir()
    (root / "instances.json").rename(root / "annotations" / "instances_val2017.json")
    (root / "images").rename(root / "val2017")
    imported = convert(
        "coco",
        root / "annotations" / "instances_val2017.json",
        tmp_path / "out",
        log=lambda _: None,
    )
    assert len(imported) == len(source)


def test_coco_with_missing_images_fails_and_writes_nothing(source, tmp_path: Path) -> None:
    coco = write_coco(source, tmp_path / "coco")
    (tmp_path / "coco" / "images" / source.images[3].file_name).unlink()
    with pytest.raises(DatasetError, match=source.images[3].file_name):
        convert(
            "coco",
            coco,
            tmp_path / "out",
            images_dir=tmp_path / "coco" / "images",
            log=lambda _: None,
        )
    assert not (tmp_path / "out").exists()


def write_voc(ds: DetectionDataset, root: Path) -> None:
    (root / "Annotations").mkdir(parents=True)
    shutil.copytree(ds.root / "images", root / "JPEGImages")
    for r in ds.images:
        objects = "".join(
            f"<object><name>{ds.categories[a.category_id]}</name><pose>Unspecified</pose>"
            f"<truncated>0</truncated><difficult>0</difficult><bndbox>"
            f"<xmin>{round(a.bbox[0]) + 1}</xmin><ymin>{round(a.bbox[1]) + 1}</ymin>"
            f"<xmax>{round(a.bbox[2])}</xmax><ymax>{round(a.bbox[3])}</ymax></bndbox></object>"
            for a in ds.boxes_for(r.id)
        )
        xml = (
            f"<annotation><folder>VOC2012</folder><filename>{r.file_name}</filename>"
            f"<size><width>{r.width}</width><height>{r.height}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{objects}</annotation>"
        )
        (root / "Annotations" / (Path(r.file_name).stem + ".xml")).write_text(xml)


def test_voc_round_trip(source, tmp_path: Path) -> None:
    write_voc(source, tmp_path / "voc")
    imported = convert("voc", tmp_path / "voc", tmp_path / "out", log=lambda _: None)
    assert_same(source, imported, atol=0.51)  # VOC stores whole pixels
    assert sorted(imported.categories.values()) == sorted(source.categories.values())


def test_voc_broken_xml_is_reported_by_file(source, tmp_path: Path) -> None:
    write_voc(source, tmp_path / "voc")
    (tmp_path / "voc" / "Annotations" / "00002.xml").write_text("<annotation><size>")
    with pytest.raises(DatasetError, match=r"00002\.xml"):
        convert("voc", tmp_path / "voc", tmp_path / "out", log=lambda _: None)


def write_yolo(ds: DetectionDataset, root: Path, names_file: str) -> None:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    ids = sorted(ds.categories)
    for r in ds.images:
        shutil.copy(ds.image_path(r), root / "images" / "train" / r.file_name)
        lines = []
        for a in ds.boxes_for(r.id):
            x1, y1, x2, y2 = a.bbox
            lines.append(
                f"{ids.index(a.category_id)} {(x1 + x2) / 2 / r.width:.6f} "
                f"{(y1 + y2) / 2 / r.height:.6f} {(x2 - x1) / r.width:.6f} "
                f"{(y2 - y1) / r.height:.6f}"
            )
        (root / "labels" / "train" / (Path(r.file_name).stem + ".txt")).write_text(
            "\n".join(lines) + "\n" if lines else ""
        )
    names = [ds.categories[c] for c in ids]
    if names_file == "data.yaml":
        (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    else:
        (root / names_file).write_text("\n".join(names) + "\n")


@pytest.mark.parametrize("names_file", ["data.yaml", "classes.txt"])
def test_yolo_round_trip(source, tmp_path: Path, names_file: str) -> None:
    write_yolo(source, tmp_path / "yolo", names_file)
    imported = convert("yolo", tmp_path / "yolo", tmp_path / "out", log=lambda _: None)
    assert_same(source, imported, atol=0.01)
    assert list(imported.categories.values()) == [
        source.categories[c] for c in sorted(source.categories)
    ]


def test_yolo_bad_lines_are_listed_with_file_and_line(source, tmp_path: Path) -> None:
    write_yolo(source, tmp_path / "yolo", "classes.txt")
    label = tmp_path / "yolo" / "labels" / "train" / "00001.txt"
    label.write_text("0 0.5 0.5 0.2\n1 50 60 10 10\nx 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError) as info:
        convert("yolo", tmp_path / "yolo", tmp_path / "out", log=lambda _: None)
    text = str(info.value)
    assert "train/00001.txt:1" in text and "train/00001.txt:2" in text
    assert "train/00001.txt:3" in text and "3 problem(s)" in text


def write_pennfudan(ds: DetectionDataset, root: Path) -> None:
    from PIL import Image

    (root / "PNGImages").mkdir(parents=True)
    (root / "Annotation").mkdir()
    (root / "PedMasks").mkdir()
    for r in ds.images:
        stem = f"FudanPed{r.id:05d}"
        Image.open(ds.image_path(r)).save(root / "PNGImages" / f"{stem}.png")
        boxes = ds.boxes_for(r.id)
        lines = [
            "# Compatible with PASCAL Annotation Version 1.00",
            f'Image filename : "PennFudanPed/PNGImages/{stem}.png"',
            f"Image size (X x Y x C) : {r.width} x {r.height} x 3",
            'Database : "The Penn-Fudan-Pedestrian Database"',
            f"Objects with ground truth : {len(boxes)} "
            + "{ "
            + " ".join('"PASpersonWalking"' for _ in boxes)
            + " }",
        ]
        for k, a in enumerate(boxes, start=1):
            x1, y1, x2, y2 = (round(v) for v in a.bbox)
            lines += [
                f'# Details for pedestrian {k} ("PASpersonWalking")',
                f'Original label for object {k} "PASpersonWalking" : "PennFudanPed"',
                f'Bounding box for object {k} "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : '
                f"({x1 + 1}, {y1 + 1}) - ({x2}, {y2})",
                f'Pixel mask for object {k} "PASpersonWalking" : '
                f'"PennFudanPed/PedMasks/{stem}_mask.png"',
            ]
        (root / "Annotation" / f"{stem}.txt").write_text("\n".join(lines) + "\n")


def test_pennfudan_round_trip(source, tmp_path: Path) -> None:
    write_pennfudan(source, tmp_path / "PennFudanPed")
    imported = convert("pennfudan", tmp_path, tmp_path / "out", log=lambda _: None)
    assert imported.categories == {1: "person"}
    assert len(imported) == len(source)
    for r_src, r_new in zip(source.images, imported.images, strict=True):
        assert r_new.file_name == f"FudanPed{r_src.id:05d}.png"
        old = sorted(tuple(round(v) for v in a.bbox) for a in source.boxes_for(r_src.id))
        new = sorted(tuple(round(v) for v in a.bbox) for a in imported.boxes_for(r_new.id))
        assert old == new


def test_pennfudan_missing_folders_say_what_to_pass(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="PNGImages"):
        convert("pennfudan", tmp_path / "empty", tmp_path / "out", log=lambda _: None)


def test_cli_convert(source, tmp_path: Path, capsys) -> None:
    coco = write_coco(source, tmp_path / "coco")
    assert cli(["data", "convert", "--from", "coco", str(coco), str(tmp_path / "out")]) == 0
    assert "12 images" in capsys.readouterr().out
    assert cli(["data", "convert", "--from", "coco", str(coco), str(tmp_path / "out")]) == 1
    assert "--overwrite" in capsys.readouterr().err

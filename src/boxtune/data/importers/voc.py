"""Pascal VOC: one XML per image (``Annotations/*.xml``) and images in ``JPEGImages/``.

VOC coordinates are 1-based and inclusive; ``xmin - 1, ymin - 1, xmax, ymax`` gives pixel
corners (the convention of Detectron2 and the VOC devkit).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from boxtune.data.images import IMAGE_SUFFIXES
from boxtune.data.importers.common import (
    Log,
    SkipLog,
    clip_box,
    finish,
    is_degenerate,
    raise_if_problems,
    resolve_log,
)
from boxtune.data.io import DatasetWriter
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError


def _text(node: ET.Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise ValueError(f"missing <{path}>")
    return found.text.strip()


def _image_for(xml_path: Path, file_name: str | None, image_dirs: list[Path]) -> Path | None:
    for folder in image_dirs:
        if file_name and (folder / file_name).is_file():
            return folder / file_name
        for suffix in IMAGE_SUFFIXES:
            candidate = folder / (xml_path.stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def import_voc(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    log = resolve_log(log, __name__)
    root = Path(src)
    ann_dir = root / "Annotations" if (root / "Annotations").is_dir() else root
    xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DatasetError(
            "no Pascal VOC .xml files found",
            where=str(ann_dir),
            hint="pass the folder holding Annotations/ and JPEGImages/",
        )
    image_dirs = [root / "JPEGImages", root / "images", root, ann_dir]
    parsed = []
    problems: list[str] = []
    names: set[str] = set()
    for xml_path in xml_files:
        try:
            tree = ET.parse(xml_path).getroot()
            file_name = tree.findtext("filename")
            width = int(float(_text(tree, "size/width")))
            height = int(float(_text(tree, "size/height")))
            objects = []
            for k, obj in enumerate(tree.findall("object")):
                name = _text(obj, "name")
                box = tuple(
                    float(_text(obj, f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")
                )
                objects.append((k, name, box))
                names.add(name)
        except (ET.ParseError, ValueError) as exc:
            problems.append(f"{xml_path.name}: {exc}")
            continue
        image = _image_for(xml_path, file_name, image_dirs)
        if image is None:
            problems.append(f"{xml_path.name}: image '{file_name}' not found in JPEGImages/")
            continue
        parsed.append((xml_path, image, width, height, objects))
    raise_if_problems(problems, root, "fix or remove these files, then convert again")
    category_of = {name: i + 1 for i, name in enumerate(sorted(names))}
    skips = SkipLog(log)
    with DatasetWriter(
        dst, categories={v: k for k, v in category_of.items()}, overwrite=overwrite
    ) as writer:
        for xml_path, image, width, height, objects in parsed:
            boxes = []
            for k, name, (x1, y1, x2, y2) in objects:
                box = clip_box((x1 - 1, y1 - 1, x2, y2), width, height)
                if is_degenerate(box):
                    skips.note("degenerate box skipped", f"{xml_path.name} object {k}")
                    continue
                boxes.append((box, category_of[name]))
            writer.add_image(image.name, image, boxes=boxes, size=(width, height))
    return finish(dst, skips)

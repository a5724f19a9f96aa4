"""The raw PennFudanPed folder: ``PNGImages/*.png`` and ``Annotation/*.txt`` (PASCAL v1.00).

Box lines read ``Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) :
(160, 182) - (302, 431)``; coordinates are 1-based and inclusive like VOC.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image

from boxtune.data.importers.common import (
    Log,
    SkipLog,
    clip_box,
    finish,
    is_degenerate,
    require_dir,
    resolve_log,
)
from boxtune.data.io import DatasetWriter
from boxtune.data.records import DetectionDataset

BOX_LINE = re.compile(
    r"Bounding box for object\s+(\d+)[^:]*:\s*\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)"
    r"\s*-\s*\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)"
)
PERSON = {1: "person"}


def parse_annotation(text: str) -> list[tuple[int, tuple[float, float, float, float]]]:
    """``(object number, (xmin, ymin, xmax, ymax))`` as written in the file (1-based)."""
    return [
        (int(m.group(1)), tuple(float(m.group(k)) for k in range(2, 6)))  # type: ignore[misc]
        for m in BOX_LINE.finditer(text)
    ]


def find_pennfudan_root(src: Path) -> Path:
    """``src`` itself or its ``PennFudanPed/`` child (the zip's top folder)."""
    if (src / "PennFudanPed").is_dir() and not (src / "PNGImages").is_dir():
        return src / "PennFudanPed"
    return src


def import_pennfudan(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    log = resolve_log(log, __name__)
    root = find_pennfudan_root(Path(src))
    hint = "pass the PennFudanPed folder holding PNGImages/ and Annotation/"
    images_dir = require_dir(root / "PNGImages", "PNGImages/ folder", hint)
    ann_dir = require_dir(root / "Annotation", "Annotation/ folder", hint)
    skips = SkipLog(log)
    with DatasetWriter(dst, categories=PERSON, overwrite=overwrite) as writer:
        for image in sorted(images_dir.glob("*.png")):
            with Image.open(image) as img:
                width, height = img.size
            ann_file = ann_dir / f"{image.stem}.txt"
            boxes = []
            if not ann_file.is_file():
                log(f"note: no annotation file {ann_file.name}; {image.name} kept as a negative")
            else:
                for number, (x1, y1, x2, y2) in parse_annotation(
                    ann_file.read_text(errors="replace")
                ):
                    box = clip_box((x1 - 1, y1 - 1, x2, y2), width, height)
                    if is_degenerate(box):
                        skips.note("degenerate box skipped", f"{ann_file.name} object {number}")
                        continue
                    boxes.append((box, 1))
            writer.add_image(image.name, image, boxes=boxes, size=(width, height))
    return finish(dst, skips)

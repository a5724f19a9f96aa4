"""COCO detection JSON: boxes ``[x, y, width, height]``; crowd regions are skipped."""

from __future__ import annotations

import os
from pathlib import Path

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
from boxtune.errors import DatasetError, read_json


def _find_json(src: Path) -> Path:
    if src.is_file():
        return src
    candidates = sorted(src.glob("*.json")) + sorted(src.glob("annotations/*.json"))
    if len(candidates) == 1:
        return candidates[0]
    raise DatasetError(
        "expected one COCO .json file" + (f", found {len(candidates)}" if candidates else ""),
        where=str(src),
        hint="pass the annotation file itself, e.g. annotations/instances_train.json",
    )


def _find_images_dir(json_path: Path, images: list[dict]) -> Path:
    first = next((i.get("file_name") for i in images if isinstance(i, dict)), None)
    candidates = [json_path.parent / "images", json_path.parent, json_path.parent.parent / "images"]
    if json_path.parent.name == "annotations":
        # The official layout: annotations/instances_<split>.json next to <split>/
        split = json_path.stem.split("_")[-1]
        candidates.insert(0, json_path.parent.parent / split)
    for folder in candidates:
        if first is None or (folder / str(first)).is_file():
            return folder
    raise DatasetError(
        f"cannot find image '{first}' next to the annotations",
        where=str(json_path),
        hint="pass the folder holding the images with --images DIR",
    )


def import_coco(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    log = resolve_log(log, __name__)
    json_path = _find_json(Path(src))
    doc = read_json(json_path)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetError(
            "not a COCO file: no 'images' array",
            where=str(json_path),
            hint="COCO detection JSON has 'images', 'annotations' and 'categories'",
        )
    images = doc["images"]
    folder = Path(images_dir) if images_dir else _find_images_dir(json_path, images)
    categories: dict[int, str] = {}
    problems: list[str] = []
    for i, cat in enumerate(doc.get("categories") or []):
        try:
            categories[int(cat["id"])] = str(cat.get("name", cat["id"]))
        except (KeyError, TypeError, ValueError):
            problems.append(f"categories[{i}]: needs an integer 'id' and a 'name'")
    by_image: dict[object, list[tuple[int, dict]]] = {}
    for j, ann in enumerate(doc.get("annotations") or []):
        if not isinstance(ann, dict) or "image_id" not in ann:
            problems.append(f"annotations[{j}]: not an object with 'image_id'")
            continue
        by_image.setdefault(ann["image_id"], []).append((j, ann))
    skips = SkipLog(log)
    entries = []
    for i, img in enumerate(images):
        try:
            entries.append(
                (img["id"], str(img["file_name"]), int(img["width"]), int(img["height"]))
            )
        except (KeyError, TypeError, ValueError):
            problems.append(f"images[{i}]: needs id, file_name, width and height")
    known = {e[0] for e in entries}
    for image_id in by_image:
        if image_id not in known:
            problems.append(f"annotations for image_id {image_id!r}, which is not in 'images'")
    raise_if_problems(problems, json_path, "fix the COCO file, then convert again")
    # COCO ids are usually integers; anything else is renumbered in file order.
    int_ids = all(isinstance(e[0], int) and not isinstance(e[0], bool) for e in entries)
    with DatasetWriter(dst, categories=categories, overwrite=overwrite) as writer:
        for n, (image_id, file_name, width, height) in enumerate(entries):
            path = folder / file_name
            if not path.is_file():
                problems.append(f"image {file_name} (id {image_id}) not found in {folder}")
                continue
            boxes = []
            for j, ann in by_image.get(image_id, []):
                where = f"annotations[{j}] (image_id {image_id})"
                if ann.get("iscrowd"):
                    skips.note(
                        "crowd region skipped (iscrowd=1 marks a group, not one object)", where
                    )
                    continue
                try:
                    x, y, w, h = (float(v) for v in ann["bbox"])
                    category_id = int(ann["category_id"])
                except (KeyError, TypeError, ValueError):
                    problems.append(f"{where}: needs bbox [x, y, w, h] and category_id")
                    continue
                box = clip_box((x, y, x + w, y + h), width, height)
                if is_degenerate(box):
                    skips.note("degenerate box skipped", f"{where} bbox {ann['bbox']}")
                    continue
                if categories and category_id not in categories:
                    problems.append(f"{where}: category_id {category_id} not in 'categories'")
                    continue
                boxes.append((box, category_id))
            writer.add_image(
                file_name,
                path,
                boxes=boxes,
                size=(width, height),
                image_id=image_id if int_ids else n + 1,
            )
        raise_if_problems(problems, json_path, "fix the COCO file or pass --images DIR")
    return finish(dst, skips)

"""YOLO txt: ``class cx cy w h`` per line, normalized to [0, 1], one .txt per image.

Layouts: ``images/…`` with ``labels/…`` mirroring it (Ultralytics), or labels next to the
images (Darknet). Class names come from ``--names``, ``data.yaml``, ``classes.txt``,
``obj.names`` or ``*.names``; without one, names are the class indices. Category ids are the
YOLO class indices. Segmentation lines (``class x1 y1 x2 y2 …``) become their bounding box.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

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
from boxtune.errors import DatasetError, file_error, first_line


def read_names(path: Path) -> dict[int, str]:
    """Class names from a YOLO ``data.yaml`` or a one-name-per-line file."""
    if path.suffix in (".yaml", ".yml"):
        data = _read_yaml(path)
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items()}
        if isinstance(names, list):
            return {i: str(n) for i, n in enumerate(names)}
        raise DatasetError(
            "no 'names' list in the YAML file",
            where=str(path),
            hint="write names: [person, car, ...]",
        )
    lines = [line.strip() for line in _read_text(path).splitlines()]
    return {i: name for i, name in enumerate(lines) if name}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise file_error(exc, path=path) from exc


_NAMES_HINT = (
    "a YOLO data.yaml holds `names: [person, car, ...]`; or pass a one-name-per-line file "
    "with --names"
)


def _read_yaml(path: Path) -> object:
    import yaml

    text = _read_text(path)
    try:
        return yaml.safe_load(text) or {}
    except RecursionError as exc:
        raise file_error(exc, path=path, hint=_NAMES_HINT) from exc
    except yaml.YAMLError as exc:
        raise DatasetError(
            f"invalid YAML: {first_line(exc)}", where=str(path), hint=_NAMES_HINT
        ) from exc


def _find_names(root: Path) -> Path | None:
    for candidate in ("data.yaml", "dataset.yaml", "classes.txt", "obj.names"):
        if (root / candidate).is_file():
            return root / candidate
    found = sorted(root.glob("*.names"))
    return found[0] if found else None


def _label_path(root: Path, image: Path) -> Path:
    rel = image.relative_to(root)
    if rel.parts and rel.parts[0] == "images":
        mirrored = root / "labels" / Path(*rel.parts[1:]).with_suffix(".txt")
        if mirrored.exists():
            return mirrored
    return image.with_suffix(".txt")


def import_yolo(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    names: str | os.PathLike | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    log = resolve_log(log, __name__)
    root = Path(src)
    if not root.is_dir():
        raise DatasetError(
            "YOLO dataset folder not found",
            where=str(root),
            hint="pass the folder holding images/ and labels/",
        )
    names_path = Path(names) if names else _find_names(root)
    class_names = read_names(names_path) if names_path else {}
    if names_path is None:
        log(
            "note: no class names file found (data.yaml, classes.txt, obj.names): names are the "
            "class indices"
        )
    image_root = root / "images" if (root / "images").is_dir() else root
    images = sorted(p for p in image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(
            "no images found",
            where=str(image_root),
            hint="YOLO datasets keep images in images/ and labels in labels/",
        )
    problems: list[str] = []
    skips = SkipLog(log)
    entries = []
    for image in images:
        with Image.open(image) as img:
            width, height = img.size
        label_file = _label_path(root, image)
        boxes = []
        lines = _read_text(label_file).splitlines() if label_file.exists() else []
        for n, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{label_file.relative_to(root)}:{n}"
            try:
                cls = int(parts[0])
                values = [float(v) for v in parts[1:]]
            except ValueError:
                problems.append(f"{where}: expected 'class cx cy w h' numbers, got {line!r}")
                continue
            if len(values) == 4:
                cx, cy, w, h = values
                box = (
                    (cx - w / 2) * width,
                    (cy - h / 2) * height,
                    (cx + w / 2) * width,
                    (cy + h / 2) * height,
                )
            elif len(values) >= 6 and len(values) % 2 == 0:
                xs, ys = values[0::2], values[1::2]
                box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
            else:
                problems.append(f"{where}: expected 4 numbers after the class, got {len(values)}")
                continue
            if any(v < -0.01 or v > 1.01 for v in values):
                problems.append(f"{where}: values {values} are not normalized to [0, 1]")
                continue
            if names_path and cls not in class_names:
                problems.append(f"{where}: class {cls} has no name in {names_path.name}")
                continue
            box = clip_box(box, width, height)
            if is_degenerate(box):
                skips.note("degenerate box skipped", where)
                continue
            boxes.append((box, cls))
        entries.append((image, width, height, boxes))
    raise_if_problems(problems, root, "fix these label lines, then convert again")
    used = {cls for *_, boxes in entries for _, cls in boxes}
    categories = {cid: class_names.get(cid, str(cid)) for cid in sorted(set(class_names) | used)}
    with DatasetWriter(dst, categories=categories, overwrite=overwrite) as writer:
        for image, width, height, boxes in entries:
            rel = image.relative_to(image_root).as_posix()
            writer.add_image(rel, image, boxes=boxes, size=(width, height))
    return finish(dst, skips)

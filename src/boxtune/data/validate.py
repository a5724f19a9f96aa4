"""Checking a dataset folder: every problem is collected, none is silently dropped.

``check_dataset(root)`` returns the full report and, when there are no errors, the dataset
(boxes within a small tolerance outside the image are clipped, with a warning).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boxtune.data.images import ImageInfo, ImageProblem, inspect_image
from boxtune.data.issues import Issue, ValidationReport
from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord

ANNOTATIONS = "annotations.json"
IMAGES_DIR = "images"
# A class with fewer boxes than this is hard to learn and to evaluate: warn.
MIN_BOXES_PER_CLASS = 5
# Boxes may overshoot the image by this many pixels (or this fraction of its side) before the
# overshoot counts as an error rather than an annotation tool's rounding.
CLIP_TOLERANCE_PX = 2.0
CLIP_TOLERANCE_FRACTION = 0.01
# Boxes narrower or lower than this are most likely stray clicks: warn.
MIN_BOX_SIDE_PX = 2.0
# When at least this share of boxes reads as COCO [x, y, w, h], say so for the whole file.
COCO_SHARE_FOR_SUMMARY = 0.2

LAYOUT_HINT = (
    "the layout is DIR/images/<files> + DIR/annotations.json with "
    '{"images":[{"file_name","height","width","id"}], '
    '"annotations":[{"image_id","bbox":[xmin,ymin,xmax,ymax],"category_id"}]}'
)


@dataclass
class CheckResult:
    report: ValidationReport
    dataset: DetectionDataset | None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


class _Checker:
    def __init__(self, root: Path, *, decode_images: bool, max_pixels: int | None):
        self.root = root
        self.decode_images = decode_images
        self.max_pixels = max_pixels
        self.report = ValidationReport(root=str(root))

    # -- reporting -------------------------------------------------------------------------
    def error(
        self,
        code: str,
        message: str,
        *,
        file: str = ANNOTATIONS,
        record: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.report.issues.append(Issue("error", code, message, file, record, field, hint))

    def warn(
        self,
        code: str,
        message: str,
        *,
        file: str = ANNOTATIONS,
        record: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.report.issues.append(Issue("warning", code, message, file, record, field, hint))

    # -- top level ---------------------------------------------------------------------------
    def run(self) -> DetectionDataset | None:
        root = self.root
        if not root.is_dir():
            self.error(
                "missing-dataset", "dataset folder does not exist", file=str(root), hint=LAYOUT_HINT
            )
            return None
        images_dir = root / IMAGES_DIR
        ann_path = root / ANNOTATIONS
        if not images_dir.is_dir():
            self.error(
                "missing-images-dir",
                f"no '{IMAGES_DIR}/' folder in the dataset",
                file=f"{IMAGES_DIR}/",
                hint=LAYOUT_HINT,
            )
        if not ann_path.is_file():
            others = sorted(p.name for p in root.glob("*.json"))
            hint = LAYOUT_HINT
            if others:
                hint = (
                    f"found {', '.join(others)}: rename it to {ANNOTATIONS}, or import it with "
                    "`boxtune data convert --from coco SRC DST` if it is COCO JSON"
                )
            self.error("missing-annotations", f"no {ANNOTATIONS} in the dataset", hint=hint)
        if not ann_path.is_file():
            return None
        data = self._load_json(ann_path)
        if data is None:
            return None
        images = self._check_images(data)
        categories = self._check_categories(data)
        annotations = self._check_annotations(data, images, categories)
        if images_dir.is_dir():
            self._check_unreferenced(images_dir, images)
        if categories is None:
            categories = {cid: str(cid) for cid in sorted({a.category_id for a in annotations})}
        self._check_class_counts(annotations, categories)
        if not self.report.ok:
            return None
        records = [rec for rec, _ in images.values()]
        return DetectionDataset(
            root=root,
            images=records,
            annotations=annotations,
            categories=categories,
            warnings=list(self.report.warnings),
        )

    def _load_json(self, path: Path) -> dict | None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            self.error("invalid-json", f"not UTF-8 text ({exc})", hint="save the file as UTF-8")
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.error(
                "invalid-json",
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                record=f"line {exc.lineno}, column {exc.colno}",
                hint="fix the syntax there (a JSON linter such as `python -m json.tool "
                "annotations.json` shows the same position)",
            )
            return None
        if not isinstance(data, dict):
            self.error(
                "wrong-type",
                f"top level is a JSON {_type_name(data)}, expected an object",
                hint=LAYOUT_HINT,
            )
            return None
        for key in ("images", "annotations"):
            if key not in data:
                self.error(
                    "missing-key", f"top-level key '{key}' is missing", field=key, hint=LAYOUT_HINT
                )
            elif not isinstance(data[key], list):
                self.error(
                    "wrong-type",
                    f"'{key}' is a JSON {_type_name(data[key])}, expected an array",
                    field=key,
                    hint=LAYOUT_HINT,
                )
        return data

    # -- images ----------------------------------------------------------------------------
    def _check_images(self, data: dict) -> dict[int, tuple[ImageRecord, ImageInfo | None]]:
        """Valid image records by id, with the real image info when the file could be read."""
        entries = data.get("images")
        if not isinstance(entries, list):
            return {}
        if not entries:
            self.error(
                "empty-dataset",
                "'images' is empty",
                field="images",
                hint="list every file of images/ in 'images'",
            )
        records: dict[int, ImageRecord] = {}
        first_index: dict[int, int] = {}
        by_name: dict[str, int] = {}
        for i, entry in enumerate(entries):
            record = self._image_record(i, entry)
            if record is None:
                continue
            where = f"images[{i}] (id {record.id})"
            if record.id in records:
                self.error(
                    "duplicate-image-id",
                    f"image id {record.id} is used again (first by "
                    f"images[{first_index[record.id]}])",
                    record=where,
                    field="id",
                    hint="give every image a unique integer id",
                )
                continue
            if record.file_name in by_name:
                self.error(
                    "duplicate-file-name",
                    f"file '{record.file_name}' is listed again (first by "
                    f"images[{by_name[record.file_name]}])",
                    record=where,
                    field="file_name",
                    hint="list each file once and attach all its boxes to that id",
                )
                continue
            records[record.id] = record
            first_index[record.id] = i
            by_name[record.file_name] = i
        paths = {iid: self._safe_path(first_index[iid], rec) for iid, rec in records.items()}
        infos = self._inspect_all(paths)
        result: dict[int, tuple[ImageRecord, ImageInfo | None]] = {}
        for iid, record in records.items():
            info = infos.get(iid)
            if info is not None:
                self._check_size(first_index[iid], record, info)
            result[iid] = (record, info)
        return result

    def _image_record(self, i: int, entry: Any) -> ImageRecord | None:
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            self.error(
                "wrong-type",
                f"entry is a JSON {_type_name(entry)}, expected an object",
                record=where,
                hint=LAYOUT_HINT,
            )
            return None
        if _is_int(entry.get("id")):
            where = f"images[{i}] (id {entry['id']})"
        ok = True
        for key, kind in (
            ("id", "integer"),
            ("file_name", "string"),
            ("width", "integer"),
            ("height", "integer"),
        ):
            if key not in entry:
                self.error(
                    "missing-key",
                    f"key '{key}' is missing",
                    record=where,
                    field=key,
                    hint=f"every image needs file_name, height, width and id ({kind} '{key}' here)",
                )
                ok = False
                continue
            value = entry[key]
            good = isinstance(value, str) and value != "" if kind == "string" else _is_int(value)
            if not good:
                self.error(
                    "wrong-type",
                    f"'{key}' is {value!r} ({_type_name(value)}), expected "
                    f"{'a non-empty string' if kind == 'string' else 'an integer'}",
                    record=where,
                    field=key,
                    hint='write ids and sizes as JSON integers, e.g. 7 not "7" or 7.0',
                )
                ok = False
            elif key in ("width", "height") and value <= 0:
                self.error(
                    "wrong-type",
                    f"'{key}' is {value}, expected a positive integer",
                    record=where,
                    field=key,
                    hint="use the image's real size in pixels",
                )
                ok = False
        if not ok:
            return None
        return ImageRecord(
            id=entry["id"],
            file_name=entry["file_name"],
            width=entry["width"],
            height=entry["height"],
        )

    def _safe_path(self, i: int, record: ImageRecord) -> Path | None:
        """The file of ``record`` if it stays inside the dataset folder and exists."""
        where = f"images[{i}] (id {record.id})"
        name = record.file_name
        images_dir = self.root / IMAGES_DIR
        hint = (
            "file_name must be a path relative to images/ that stays inside it; copy the "
            "file into images/"
        )
        if (
            os.path.isabs(name)
            or name.startswith(("/", "\\"))
            or (len(name) > 1 and name[1] == ":")
        ):
            self.error(
                "path-escapes",
                f"file_name '{name}' is an absolute path",
                record=where,
                field="file_name",
                hint=hint,
            )
            return None
        parts = Path(name.replace("\\", "/")).parts
        if ".." in parts:
            self.error(
                "path-escapes",
                f"file_name '{name}' uses '..' to leave images/",
                record=where,
                field="file_name",
                hint=hint,
            )
            return None
        path = images_dir / name
        if path.is_symlink() or any(p.is_symlink() for p in path.parents):
            try:
                resolved = path.resolve(strict=False)
                inside = resolved.is_relative_to(self.root.resolve())
            except (OSError, RuntimeError):
                inside = False
            if not inside:
                self.error(
                    "path-escapes",
                    f"file_name '{name}' is a symlink that points outside the dataset folder",
                    record=where,
                    field="file_name",
                    hint=hint,
                )
                return None
        if not path.is_file():
            self.error(
                "missing-file",
                f"file images/{name} does not exist",
                record=where,
                field="file_name",
                hint="copy the image into images/ or remove this entry and its boxes",
            )
            return None
        return path

    def _inspect_all(self, paths: dict[int, Path | None]) -> dict[int, ImageInfo]:
        todo = [(iid, p) for iid, p in paths.items() if p is not None]

        def inspect(item: tuple[int, Path]) -> tuple[int, Path, ImageInfo | ImageProblem]:
            iid, path = item
            try:
                return (
                    iid,
                    path,
                    inspect_image(path, decode=self.decode_images, max_pixels=self.max_pixels),
                )
            except ImageProblem as problem:
                return iid, path, problem

        # Decoding releases the GIL: a few threads check large datasets several times faster.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            results = list(pool.map(inspect, todo))
        infos: dict[int, ImageInfo] = {}
        for iid, path, outcome in results:
            if isinstance(outcome, ImageProblem):
                self.error(
                    outcome.code,
                    outcome.message,
                    file=str(path.relative_to(self.root)),
                    record=f"image id {iid}",
                    hint=outcome.hint,
                )
            else:
                infos[iid] = outcome
        return infos

    def _check_size(self, i: int, record: ImageRecord, info: ImageInfo) -> None:
        if (record.width, record.height) == (info.width, info.height):
            return
        hint = f"set width to {info.width} and height to {info.height}"
        if (record.width, record.height) == (info.height, info.width):
            hint += (
                " (width and height are swapped: if the photo carries an EXIF rotation, note "
                "that boxtune uses the pixels as stored, without applying the rotation)"
            )
        self.error(
            "size-mismatch",
            f"declared {record.width}x{record.height} (width x height) but the image is "
            f"{info.width}x{info.height}",
            record=f"images[{i}] (id {record.id})",
            field="width/height",
            hint=hint,
        )

    # -- categories --------------------------------------------------------------------------
    def _check_categories(self, data: dict) -> dict[int, str] | None:
        if "categories" not in data:
            return None
        entries = data["categories"]
        if not isinstance(entries, list):
            self.error(
                "wrong-type",
                f"'categories' is a JSON {_type_name(entries)}, expected an "
                'array of {"id", "name"}',
                field="categories",
                hint='write "categories": [{"id": 1, "name": "person"}, ...]',
            )
            return {}
        categories: dict[int, str] = {}
        for i, entry in enumerate(entries):
            where = f"categories[{i}]"
            if not isinstance(entry, dict) or "id" not in entry:
                self.error(
                    "missing-key",
                    "category needs an integer 'id' and a 'name'",
                    record=where,
                    field="id",
                    hint='write {"id": 1, "name": "person"}',
                )
                continue
            cid, name = entry["id"], entry.get("name", str(entry["id"]))
            if not _is_int(cid):
                self.error(
                    "non-integer-category-id",
                    f"category id {cid!r} ({_type_name(cid)}) is not an integer",
                    record=where,
                    field="id",
                    hint="category ids must be JSON integers",
                )
                continue
            if not isinstance(name, str):
                self.error(
                    "wrong-type",
                    f"name {name!r} is not a string",
                    record=where,
                    field="name",
                    hint="write the label name as a JSON string",
                )
                continue
            if cid in categories:
                self.error(
                    "duplicate-category-id",
                    f"category id {cid} is listed twice",
                    record=where,
                    field="id",
                    hint="give each category a unique id",
                )
                continue
            categories[cid] = name
        return categories

    # -- annotations -------------------------------------------------------------------------
    def _check_annotations(
        self,
        data: dict,
        images: dict[int, tuple[ImageRecord, ImageInfo | None]],
        categories: dict[int, str] | None,
    ) -> list[BoxAnnotation]:
        entries = data.get("annotations")
        if not isinstance(entries, list):
            return []
        known_ids = self._all_listed_ids(data)
        result: list[BoxAnnotation] = []
        coco_like = 0
        first_seen: dict[BoxAnnotation, int] = {}
        for j, entry in enumerate(entries):
            outcome = self._annotation(j, entry, images, known_ids, categories)
            if outcome == "coco":
                coco_like += 1
            elif isinstance(outcome, BoxAnnotation):
                if outcome in first_seen:
                    self.warn(
                        "duplicate-bbox",
                        f"same box and class as annotations[{first_seen[outcome]}]",
                        record=f"annotations[{j}] (image_id {outcome.image_id})",
                        field="bbox",
                        hint="remove the duplicate; it counts the object twice",
                    )
                    continue
                first_seen[outcome] = j
                self._warn_if_tiny(j, outcome)
                result.append(outcome)
        if coco_like >= max(3, COCO_SHARE_FOR_SUMMARY * len(entries)):
            self.error(
                "coco-xywh-file",
                f"{coco_like} of {len(entries)} boxes only make sense as COCO "
                "[x, y, width, height]; this file looks like COCO boxes, not the corner "
                "boxes [xmin, ymin, xmax, ymax] boxtune expects",
                field="bbox",
                hint="convert it: `boxtune data convert --from coco SRC DST` (or write "
                "xmax = x + width, ymax = y + height)",
            )
        return result

    def _warn_if_tiny(self, j: int, ann: BoxAnnotation) -> None:
        if ann.width < MIN_BOX_SIDE_PX or ann.height < MIN_BOX_SIDE_PX:
            self.warn(
                "tiny-bbox",
                f"bbox {list(ann.bbox)} is {ann.width:g}x{ann.height:g} px, too small to "
                "learn from",
                record=f"annotations[{j}] (image_id {ann.image_id})",
                field="bbox",
                hint="check it is not a stray click in the annotation tool",
            )

    def _all_listed_ids(self, data: dict) -> set[int]:
        entries = data.get("images")
        if not isinstance(entries, list):
            return set()
        return {e["id"] for e in entries if isinstance(e, dict) and _is_int(e.get("id"))}

    def _annotation(
        self,
        j: int,
        entry: Any,
        images: dict,
        known_ids: set[int],
        categories: dict[int, str] | None,
    ) -> BoxAnnotation | str | None:
        where = f"annotations[{j}]"
        if not isinstance(entry, dict):
            self.error(
                "wrong-type",
                f"entry is a JSON {_type_name(entry)}, expected an object",
                record=where,
                hint=LAYOUT_HINT,
            )
            return None
        image_id = entry.get("image_id")
        if _is_int(image_id):
            where = f"annotations[{j}] (image_id {image_id})"
        ok = True
        for key in ("image_id", "bbox", "category_id"):
            if key not in entry:
                self.error(
                    "missing-key",
                    f"key '{key}' is missing",
                    record=where,
                    field=key,
                    hint="every annotation needs image_id, bbox [xmin, ymin, xmax, ymax] "
                    "and category_id",
                )
                ok = False
        if "image_id" in entry:
            if not _is_int(image_id):
                self.error(
                    "wrong-type",
                    f"image_id {image_id!r} ({_type_name(image_id)}) is not an integer",
                    record=where,
                    field="image_id",
                    hint="use the integer id of an entry of 'images'",
                )
                ok = False
            elif image_id not in known_ids:
                self.error(
                    "unknown-image-id",
                    f"image_id {image_id} is not listed in 'images'",
                    record=where,
                    field="image_id",
                    hint="add the image to 'images' or remove this annotation",
                )
                ok = False
        category_id = entry.get("category_id")
        if "category_id" in entry:
            if not _is_int(category_id):
                self.error(
                    "non-integer-category-id",
                    f"category_id {category_id!r} ({_type_name(category_id)}) is not an integer",
                    record=where,
                    field="category_id",
                    hint='category ids must be JSON integers (e.g. 1, not "1", 1.5 or '
                    "\"person\"); map names to ids in 'categories'",
                )
                ok = False
            elif categories is not None and category_id not in categories:
                self.error(
                    "unknown-category-id",
                    f"category_id {category_id} is not listed in 'categories'",
                    record=where,
                    field="category_id",
                    hint=f'add {{"id": {category_id}, "name": ...}} to \'categories\'',
                )
                ok = False
        bbox = self._bbox_values(where, entry.get("bbox")) if "bbox" in entry else None
        if bbox is None or not ok:
            return None
        record, info = images.get(image_id, (None, None))
        if record is None:
            return None  # the image entry itself was reported
        width, height = (info.width, info.height) if info else (record.width, record.height)
        checked = self._bbox_geometry(where, bbox, width, height)
        if isinstance(checked, str):
            return checked
        if checked is None:
            return None
        return BoxAnnotation(image_id=image_id, bbox=checked, category_id=category_id)

    def _bbox_values(self, where: str, bbox: Any) -> tuple[float, float, float, float] | None:
        if not isinstance(bbox, list) or len(bbox) != 4:
            self.error(
                "wrong-type",
                f"bbox is {bbox!r}, expected 4 numbers",
                record=where,
                field="bbox",
                hint="write bbox as [xmin, ymin, xmax, ymax] in pixels",
            )
            return None
        if not all(_is_number(v) for v in bbox):
            self.error(
                "non-numeric-bbox",
                f"bbox {bbox!r} holds non-numeric values",
                record=where,
                field="bbox",
                hint="write the coordinates as JSON numbers, not strings or null",
            )
            return None
        if not all(math.isfinite(v) for v in bbox):
            self.error(
                "non-finite-bbox",
                f"bbox {bbox!r} holds NaN or infinity",
                record=where,
                field="bbox",
                hint="fix the tool that exported this box, or remove it",
            )
            return None
        return tuple(float(v) for v in bbox)  # type: ignore[return-value]

    def _bbox_geometry(
        self, where: str, bbox: tuple[float, float, float, float], width: int, height: int
    ) -> tuple[float, float, float, float] | str | None:
        x1, y1, x2, y2 = bbox
        size = f"the image is {width}x{height}"
        if max(width, height) > 4 and all(0.0 <= v <= 1.0 for v in bbox) and (x2 > x1 or y2 > y1):
            self.error(
                "normalized-bbox",
                f"bbox {list(bbox)} looks normalized to [0, 1] but boxes are in pixels ({size})",
                record=where,
                field="bbox",
                hint="multiply x by the image width and y by the image height",
            )
            return None
        tol_x = max(CLIP_TOLERANCE_PX, CLIP_TOLERANCE_FRACTION * width)
        tol_y = max(CLIP_TOLERANCE_PX, CLIP_TOLERANCE_FRACTION * height)
        degenerate = x2 <= x1 or y2 <= y1
        outside = x1 < -tol_x or y1 < -tol_y or x2 > width + tol_x or y2 > height + tol_y
        valid_as_xywh = (
            x2 > 0
            and y2 > 0
            and x1 >= -tol_x
            and y1 >= -tol_y
            and x1 + x2 <= width + tol_x
            and y1 + y2 <= height + tol_y
        )
        if (degenerate or outside) and valid_as_xywh:
            self.error(
                "coco-xywh-bbox",
                f"bbox {list(bbox)} is not a valid [xmin, ymin, xmax, ymax] box but fits "
                f"as COCO [x, y, width, height] ({size})",
                record=where,
                field="bbox",
                hint="boxes must be corners: xmax = x + width, ymax = y + height "
                "(`boxtune data convert --from coco` does this)",
            )
            return "coco"
        if degenerate:
            self.error(
                "degenerate-bbox",
                f"bbox {list(bbox)} has zero or negative size (needs xmax > xmin and ymax > ymin)",
                record=where,
                field="bbox",
                hint="fix or remove this box; the order is [xmin, ymin, xmax, ymax]",
            )
            return None
        if outside:
            self.error(
                "bbox-outside-image",
                f"bbox {list(bbox)} lies outside the image ({size}) by more than "
                f"{tol_x:.0f}x{tol_y:.0f} px",
                record=where,
                field="bbox",
                hint="check that the box belongs to this image and uses pixel corners",
            )
            return None
        clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        if clipped != bbox:
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                self.error(
                    "degenerate-bbox",
                    f"bbox {list(bbox)} has no area inside the image ({size})",
                    record=where,
                    field="bbox",
                    hint="remove this box",
                )
                return None
            self.warn(
                "bbox-clipped",
                f"bbox {list(bbox)} slightly exceeds the image ({size}); clipped to "
                f"{[round(v, 2) for v in clipped]}",
                record=where,
                field="bbox",
                hint="clip boxes to the image in your annotation tool to silence this",
            )
        return clipped

    # -- dataset-wide warnings ---------------------------------------------------------------
    def _check_unreferenced(self, images_dir: Path, images: dict) -> None:
        listed = {os.path.normpath(rec.file_name) for rec, _ in images.values()}
        for dirpath, _dirs, files in os.walk(images_dir):
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(dirpath, name), images_dir)
                if name.startswith(".") or rel in listed:
                    continue
                self.warn(
                    "unreferenced-file",
                    f"images/{rel} is not listed in {ANNOTATIONS} and will be ignored",
                    file=f"images/{rel}",
                    hint="add it to 'images' (with no boxes it counts as a negative) or delete it",
                )

    def _check_class_counts(
        self, annotations: list[BoxAnnotation], categories: dict[int, str]
    ) -> None:
        counts = Counter(a.category_id for a in annotations)
        if not annotations and self.report.ok:
            self.warn(
                "no-boxes",
                "the dataset has no boxes at all (only negatives)",
                field="annotations",
                hint="a training dataset needs annotated objects",
            )
        for cid, name in sorted(categories.items()):
            n = counts.get(cid, 0)
            if n < MIN_BOXES_PER_CLASS and annotations:
                self.warn(
                    "rare-class",
                    f"class {cid} ('{name}') has only {n} box(es)",
                    record=f"category {cid}",
                    field="category_id",
                    hint=f"add examples (at least {MIN_BOXES_PER_CLASS}, ideally dozens) "
                    "or merge/remove the class",
                )


def check_dataset(
    root: str | os.PathLike, *, decode_images: bool = True, max_pixels: int | None = None
) -> CheckResult:
    """Validate a local dataset folder; never raises for problems in the data."""
    checker = _Checker(Path(root), decode_images=decode_images, max_pixels=max_pixels)
    dataset = checker.run()
    return CheckResult(report=checker.report, dataset=dataset)

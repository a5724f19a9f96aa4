"""In-memory form of a dataset in the managed layout: ``images/`` + ``annotations.json``.

Boxes are pixel corners ``[xmin, ymin, xmax, ymax]`` in the original image, never COCO's
``[x, y, width, height]``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from boxtune.data.issues import Issue
from boxtune.labels import LabelMap

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageRecord:
    """One entry of ``images``; ``file_name`` is relative to ``DIR/images/``."""

    id: int
    file_name: str
    width: int
    height: int

    def to_json(self) -> dict:
        return {
            "file_name": self.file_name,
            "height": self.height,
            "width": self.width,
            "id": self.id,
        }


@dataclass(frozen=True)
class BoxAnnotation:
    """One entry of ``annotations``: a corner box in pixels of image ``image_id``."""

    image_id: int
    bbox: BBox
    category_id: int

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "bbox": [_compact_coordinate(v) for v in self.bbox],
            "category_id": self.category_id,
        }


def _compact_coordinate(value: float) -> float | int:
    """Write whole-number coordinates as ints so files stay readable."""
    return int(value) if float(value).is_integer() else round(float(value), 3)


@dataclass
class DetectionDataset:
    """A validated dataset. ``categories`` maps category_id -> label name.

    ``warnings`` holds the non-fatal findings of validation (clipped boxes, unreferenced files,
    rare classes); errors never reach this object because reading raises ``DatasetError``.
    """

    root: Path
    images: list[ImageRecord]
    annotations: list[BoxAnnotation]
    categories: dict[int, str]
    warnings: list[Issue] = field(default_factory=list)

    @cached_property
    def label_map(self) -> LabelMap:
        return LabelMap.from_categories(self.categories)

    @cached_property
    def _by_image(self) -> dict[int, list[BoxAnnotation]]:
        grouped: dict[int, list[BoxAnnotation]] = defaultdict(list)
        for ann in self.annotations:
            grouped[ann.image_id].append(ann)
        return grouped

    @cached_property
    def _records(self) -> dict[int, ImageRecord]:
        return {record.id: record for record in self.images}

    def __len__(self) -> int:
        return len(self.images)

    def image(self, image_id: int) -> ImageRecord:
        return self._records[image_id]

    def image_path(self, record: ImageRecord | int) -> Path:
        if isinstance(record, int):
            record = self._records[record]
        return self.root / "images" / record.file_name

    def boxes_for(self, image_id: int) -> list[BoxAnnotation]:
        """The annotations of one image (empty for negatives)."""
        return list(self._by_image.get(image_id, ()))

    def box_array(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes float32 [N, 4] (pixel corners) and category ids int64 [N] of one image."""
        anns = self._by_image.get(image_id, ())
        boxes = np.array([a.bbox for a in anns], dtype=np.float32).reshape(-1, 4)
        cats = np.array([a.category_id for a in anns], dtype=np.int64)
        return boxes, cats

    def subset(self, image_ids: Iterable[int]) -> DetectionDataset:
        """The same dataset restricted to ``image_ids`` (order kept as given).

        Categories stay complete so that the label map of a subset equals the parent's.
        """
        wanted = list(dict.fromkeys(image_ids))
        unknown = [i for i in wanted if i not in self._records]
        if unknown:
            raise KeyError(f"image ids not in dataset: {unknown[:10]}")
        keep = set(wanted)
        return DetectionDataset(
            root=self.root,
            images=[self._records[i] for i in wanted],
            annotations=[a for a in self.annotations if a.image_id in keep],
            categories=dict(self.categories),
            warnings=[],
        )

    def class_counts(self) -> dict[int, int]:
        """Boxes per category id (every category listed, zero included)."""
        counts = Counter(a.category_id for a in self.annotations)
        return {cid: counts.get(cid, 0) for cid in sorted(self.categories)}

    def to_json(self) -> dict:
        return {
            "images": [r.to_json() for r in self.images],
            "annotations": [a.to_json() for a in self.annotations],
            "categories": [
                {"id": cid, "name": name} for cid, name in sorted(self.categories.items())
            ],
        }

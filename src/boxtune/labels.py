"""The label map: class index i (0-based, contiguous) <-> category_id <-> label name.

Stored as ``labels_info.json`` in every artifact. Indices follow sorted category ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from boxtune.errors import ModelError, read_json


@dataclass(frozen=True)
class LabelMap:
    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: dict[int, str]) -> LabelMap:
        ids = tuple(sorted(categories))
        return cls(ids, tuple(categories[i] for i in ids))

    def __len__(self) -> int:
        return len(self.category_ids)

    def index_of(self, category_id: int) -> int:
        return self.category_ids.index(category_id)

    def to_json(self) -> dict:
        return {
            "labels": list(self.names),
            "category_ids": list(self.category_ids),
            "classes": [
                {"index": i, "category_id": c, "name": n}
                for i, (c, n) in enumerate(zip(self.category_ids, self.names, strict=True))
            ],
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "labels_info.json") -> LabelMap:
        try:
            ids = tuple(int(c) for c in data["category_ids"])
            names = tuple(str(n) for n in data["labels"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"label map is malformed ({exc})",
                where=source,
                hint="it must hold 'labels' and 'category_ids' lists of equal length",
            ) from exc
        if len(ids) != len(names):
            raise ModelError(
                f"{len(ids)} category_ids but {len(names)} labels",
                where=source,
                hint="re-export the artifact",
            )
        return cls(ids, names)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> LabelMap:
        # read_json: a damaged or hostile file (not UTF-8, nested too deeply) is a ModelError
        return cls.from_json(read_json(path, kind=ModelError), source=str(path))  # type: ignore[arg-type]

"""Helpers shared by the importers."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from boxtune.data.io import read_dataset
from boxtune.data.records import BBox, DetectionDataset
from boxtune.errors import DatasetError

Log = Callable[[str], None]


def resolve_log(log: Log | None, module: str) -> Log:
    """``log`` itself, or (``None``) the INFO method of the logger named ``module``."""
    return log if log is not None else logging.getLogger(module).info


class SkipLog:
    """Counts skipped or adjusted boxes by reason and logs the first few of each."""

    def __init__(self, log: Log, show: int = 5):
        self.log = log
        self.show = show
        self.counts: Counter[str] = Counter()

    def note(self, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= self.show:
            self.log(f"note: {reason}: {detail}")

    def summary(self) -> None:
        for reason, n in self.counts.items():
            self.log(f"note: {n} box(es) in total: {reason}")


def clip_box(bbox: BBox, width: int, height: int) -> BBox:
    x1, y1, x2, y2 = bbox
    return (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))


def is_degenerate(bbox: BBox) -> bool:
    return not (bbox[2] > bbox[0] and bbox[3] > bbox[1])


def require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found", where=str(path), hint=hint)
    return path


def raise_if_problems(problems: list[str], source: Path, hint: str) -> None:
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DatasetError(
            f"{len(problems)} problem(s) in the source data:\n{shown}{more}",
            where=str(source),
            hint=hint,
        )


def finish(dst: str | Path, skips: SkipLog) -> DetectionDataset:
    skips.summary()
    return read_dataset(dst)

"""Importers from common detection formats into boxtune's layout.

Each importer writes the new dataset atomically, reports every box it skips (crowd regions,
degenerate boxes) through ``log``, then reads the result back through full validation.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError, os_error

FORMATS = ("coco", "voc", "yolo", "pennfudan")
Log = Callable[[str], None]


def convert(
    source_format: str,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    names: str | os.PathLike | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> DetectionDataset:
    """Convert ``src`` in ``source_format`` (coco, voc, yolo, pennfudan) to a dataset at ``dst``.

    ``log`` receives the notes on skipped boxes (default: the importer's logger, at INFO).
    An OSError (a source file that cannot be read, a full disk while writing ``dst``) is a
    DatasetError with the path; the partial output is removed (``DatasetWriter``).
    """
    try:
        return _convert(source_format, src, dst, images_dir, names, overwrite, log)
    except OSError as exc:
        action = f"importing the {source_format} dataset"
        raise os_error(exc, action=action, kind=DatasetError) from exc


def _convert(
    source_format: str,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    names: str | os.PathLike | None,
    overwrite: bool,
    log: Log | None,
) -> DetectionDataset:
    if source_format == "coco":
        from boxtune.data.importers.coco import import_coco

        return import_coco(src, dst, images_dir=images_dir, overwrite=overwrite, log=log)
    if source_format == "voc":
        from boxtune.data.importers.voc import import_voc

        return import_voc(src, dst, overwrite=overwrite, log=log)
    if source_format == "yolo":
        from boxtune.data.importers.yolo import import_yolo

        return import_yolo(src, dst, names=names, overwrite=overwrite, log=log)
    if source_format == "pennfudan":
        from boxtune.data.importers.pennfudan import import_pennfudan

        return import_pennfudan(src, dst, overwrite=overwrite, log=log)
    raise DatasetError(
        f"unknown source format '{source_format}'", hint=f"use one of: {', '.join(FORMATS)}"
    )

"""A dataset sent as one zip (the web console's upload): unpacked safely into its own folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from boxtune import fileio
from boxtune.data.validate import ANNOTATIONS as ANNOTATIONS_FILE
from boxtune.data.validate import IMAGES_DIR
from boxtune.errors import DatasetError

MAX_LISTED = 8


def _dataset_roots(folder: Path) -> list[Path]:
    """Folders holding ``annotations.json``, shallowest first."""
    found = sorted(folder.rglob(ANNOTATIONS_FILE), key=lambda p: (len(p.parts), str(p)))
    return [path.parent for path in found]


def _contents(folder: Path) -> str:
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def import_dataset_zip(
    zip_path: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    shown_name: str | None = None,
    limits: fileio.ArchiveLimits | None = None,
) -> Path:
    """Unpack the zip at ``zip_path`` and place its dataset (the folder holding
    ``annotations.json``, at the top or one folder down) at ``destination``; returns it.

    Nothing lands at ``destination`` unless the zip is safe and holds a dataset. The data is not
    validated here: run :func:`boxtune.data.validate_dataset` on the result.
    """
    where = shown_name or str(zip_path)
    target = Path(destination)
    if target.exists():
        raise DatasetError(
            f"{target} exists already", where=where, hint="pick another name for the dataset"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".upload-") as staging:
        try:
            fileio.extract_zip(zip_path, staging, limits or fileio.ArchiveLimits.from_env())
        except fileio.ArchiveError as exc:
            raise DatasetError(
                f"cannot unpack the zip: {exc}",
                where=where,
                hint="zip the dataset folder itself (images/ and annotations.json) and upload "
                "that zip",
            ) from exc
        roots = _dataset_roots(Path(staging))
        if not roots:
            raise DatasetError(
                f"the zip holds no {ANNOTATIONS_FILE} (it holds: "
                f"{_contents(Path(staging)) or 'nothing'})",
                where=where,
                hint=f"a dataset zip holds {ANNOTATIONS_FILE} and an {IMAGES_DIR}/ folder, at "
                "its top or inside one folder",
            )
        root = roots[0]
        if len(root.relative_to(staging).parts) > 1:
            raise DatasetError(
                f"{ANNOTATIONS_FILE} is nested too deep in the zip "
                f"({root.relative_to(staging) / ANNOTATIONS_FILE})",
                where=where,
                hint="zip the dataset folder itself",
            )
        # The staging folder is created 0700; the dataset gets a plain mkdir's mode.
        mask = os.umask(0)
        os.umask(mask)
        root.chmod(0o777 & ~mask)
        fileio.move_into_place(root, target)
    return target

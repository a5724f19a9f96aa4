"""What a training job hands back to the platform: the artifact's files in ``/opt/ml/model``
(the platform tars that folder into model.tar.gz itself), extra outputs in
``/opt/ml/output/data``, and the reason of a failure in ``/opt/ml/output/failure``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from boxtune.artifacts import MANIFEST_FILE, verify_artifact
from boxtune.fileio import atomic_path, atomic_write_text, move_into_place, remove_path

# The staging folder inside the model folder: the model folder may be a mount of its own (the
# SDK's local mode mounts it), so only a folder inside it renames into it.
STAGING_PREFIX = ".boxtune-staging-"


def publish_artifact(artifact_dir: Path, model_dir: Path) -> list[str]:
    """Copy the artifact at ``artifact_dir`` (its manifest and the files the manifest lists;
    not its model.tar.gz, which the platform makes) into ``model_dir``; returns the names.

    The copy is staged inside ``model_dir`` and checked against the manifest's sha256, then
    each entry is renamed into place with the manifest last: ``model_dir`` holds a complete
    artifact or no manifest at all. A failure removes what it had moved in.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_staging_leftovers(model_dir)
    manifest = verify_artifact(artifact_dir)
    names = [*manifest["files"], MANIFEST_FILE]
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=STAGING_PREFIX))
    moved: list[Path] = []
    try:
        for name in names:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(artifact_dir / name, target)
        verify_artifact(staging)
        (model_dir / MANIFEST_FILE).unlink(missing_ok=True)  # an old artifact stops being one
        for entry in sorted(os.listdir(staging)):
            if entry != MANIFEST_FILE:  # files, or folders (a SavedModel) as a whole
                move_into_place(staging / entry, model_dir / entry)
                moved.append(model_dir / entry)
        os.replace(staging / MANIFEST_FILE, model_dir / MANIFEST_FILE)
    except BaseException:
        for path in moved:
            remove_path(path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return names


def remove_staging_leftovers(model_dir: Path) -> None:
    """What a killed job left half-copied in ``model_dir``."""
    for path in model_dir.glob(f"{STAGING_PREFIX}*"):
        remove_path(path)


def copy_outputs(files: list[Path], output_data_dir: Path) -> list[Path]:
    """Copy the ``files`` that exist into ``output_data_dir``, each whole or not at all."""
    copied = []
    for source in files:
        if not source.is_file():
            continue
        target = output_data_dir / source.name
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        copied.append(target)
    return copied


def write_failure(failure_file: Path, reason: str) -> None:
    """The reason the job failed, where the platform reads it (its failure reason)."""
    atomic_write_text(failure_file, reason.rstrip("\n") + "\n")


def clear_failure(failure_file: Path) -> None:
    """A previous run's reason must not describe this run (reused local roots)."""
    failure_file.unlink(missing_ok=True)

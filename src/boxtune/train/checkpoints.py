"""Checkpoints for --resume: the engine saves model and optimizer, the trainer adds its state.

A run's checkpoints live in ``OUTPUT/checkpoints/``, named by the engine
(``Engine.checkpoint_name``: a file such as ``last.pt``, or a directory of index + shards).
The trainer's state travels as one JSON string inside the engine's ``extra`` dict, so it survives
any serializer the engine uses (including torch's ``weights_only`` loading).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boxtune.engines.base import CheckpointRole, Detector
from boxtune.errors import StorageError
from boxtune.fileio import move_into_place, remove_path

STATE_KEY = "boxtune_trainer_state"
FORMAT_VERSION = 1


@dataclass
class TrainerState:
    """Where a run stands: ``epoch`` is the next epoch to run and ``step`` the next step in it
    (non-zero only after an interruption mid-epoch)."""

    model_id: str
    labels: dict
    hyperparameters: dict[str, str]
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    tracker: dict = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    partial_epoch: dict = field(default_factory=dict)  # running sums of an interrupted epoch
    best_evaluation: dict | None = None
    format_version: int = FORMAT_VERSION

    def to_extra(self) -> dict[str, Any]:
        return {STATE_KEY: json.dumps(asdict(self))}

    @classmethod
    def from_extra(cls, extra: dict[str, Any], source: Path) -> TrainerState:
        from boxtune.errors import TrainingError

        try:
            data = json.loads(extra[STATE_KEY])
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(
                f"checkpoint holds no boxtune trainer state ({exc})",
                where=str(source),
                hint="it was not written by `boxtune train`; remove it, or start without "
                "--resume into a new --output directory",
            ) from exc


CHECKPOINT_DIR = "checkpoints"


def find_checkpoint(checkpoint_dir: Path, role: CheckpointRole) -> Path | None:
    """The ``role`` checkpoint in ``checkpoint_dir`` whatever engine named it (``last.pt``,
    ``last/``...), without knowing the engine; None when there is none."""
    if not checkpoint_dir.is_dir():
        return None
    for entry in sorted(checkpoint_dir.iterdir()):
        if entry.name == role or entry.name.startswith(f"{role}."):
            return entry
    return None


def _staging_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.partial")


# _staging_path's names: the writer's pid tells whether a writer may still be at work.
_STAGING_NAME = re.compile(r"^\..+\.(\d+)\.partial$")


def save(detector: Detector, path: Path, state: TrainerState) -> None:
    """Write atomically, file or directory: a kill mid-write leaves the previous checkpoint
    intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_path(path, os.getpid())
    remove_path(staging)
    try:
        detector.save_checkpoint(staging, state.to_extra())
        move_into_place(staging, path)
    except StorageError as exc:  # the user knows the checkpoint, not its staging name
        raise StorageError(exc.message, where=str(path), hint=exc.hint) from exc
    finally:
        remove_path(staging)


def remove_stale_staging(checkpoint_dir: Path) -> list[Path]:
    """Delete the half-written checkpoints a killed run left in ``checkpoint_dir``; returns them.

    A staging path whose writer is alive in another process is kept (a recycled pid only
    delays its removal to a later start)."""
    if not checkpoint_dir.is_dir():
        return []
    removed = []
    for entry in sorted(checkpoint_dir.iterdir()):
        match = _STAGING_NAME.match(entry.name)
        if match and not _alive_elsewhere(int(match.group(1))):
            remove_path(entry)
            removed.append(entry)
    return removed


def _alive_elsewhere(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes no checkpoint while a run starts
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:  # not a pid this system can have
        return False
    return True


def load(detector: Detector, path: Path) -> TrainerState:
    return TrainerState.from_extra(detector.load_checkpoint(path), path)

"""Where the platform puts each file of the container contract, under a configurable root.

The platform uses ``/opt/ml``; ``--root DIR`` or ``BOXTUNE_ML_ROOT`` moves the whole tree (tests,
running the container's programs outside a container).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "BOXTUNE_ML_ROOT"

TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"
MODEL_CHANNEL = "model"


@dataclass(frozen=True)
class MLLayout:
    """The ``/opt/ml`` tree of one container."""

    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> MLLayout:
        """``root``, else ``$BOXTUNE_ML_ROOT``, else ``/opt/ml``."""
        chosen = root if root is not None else (os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
        return cls(Path(chosen).expanduser().absolute())

    # -- what the platform provides ----------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data_dir / name

    # -- what the job writes ------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        """Training: the platform tars this folder into model.tar.gz. Hosting: where it
        unpacks model.tar.gz."""
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        """Extra outputs; the platform uploads them as output.tar.gz."""
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        """Why the job failed: the platform shows it as the job's failure reason."""
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        """Present when the job has a checkpoint location: the platform syncs it with S3 and
        restores it when a (spot) job restarts."""
        return self.root / "checkpoints"

"""A fake ``/opt/ml`` tree, as the platform gives a training container, and the values the
container tests share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Short trainings: 12 images of 128 px, one epoch.
TINY = {"epochs": "1", "image_size": "128", "batch_size": "4", "num_workers": "0"}
CLASSES = ["circle", "triangle", "square", "star"]


def make_ml_root(
    root: Path,
    *,
    training: Path | None = None,
    validation: Path | None = None,
    model: Path | None = None,
    hyperparameters: dict | None = None,
    input_data_config: dict | None = None,
    hosts: tuple[str, ...] = ("algo-1",),
    checkpoints: bool = False,
) -> Path:
    """The tree the platform gives a training container: input/config/*.json and the
    channels under input/data/ (copies of the given folders; ``model``: a folder whose files
    are copied into the model channel). ``input_data_config`` defaults to the channels given,
    in File mode."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    channels = {"training": training, "validation": validation, "model": model}
    for name, source in channels.items():
        if source is not None:
            shutil.copytree(source, root / "input" / "data" / name)
    if input_data_config is None:
        input_data_config = {
            name: {"ContentType": "application/x-image", "TrainingInputMode": "File"}
            for name, source in channels.items()
            if source is not None
        }
    resources = {"current_host": hosts[0], "hosts": list(hosts), "network_interface_name": "eth0"}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    (config / "inputdataconfig.json").write_text(json.dumps(input_data_config))
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    if checkpoints:
        (root / "checkpoints").mkdir()
    return root

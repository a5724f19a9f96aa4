"""The job's configuration files under ``input/config``, read and checked.

- ``hyperparameters.json``: name -> value, every value a string. Framework estimators add
  ``sagemaker_*`` keys and JSON-encode their values (``"\\"adam\\""``); hyperparameter tuning
  adds ``_tuning_objective_metric``. Those keys configure the platform's own containers and
  are left out; ``model_id`` names the model to fine-tune and is taken out as well.
- ``inputdataconfig.json``: channel name -> settings; boxtune reads files, so a channel in
  ``Pipe`` mode is refused.
- ``resourceconfig.json``: the hosts of the job; boxtune trains on one.

A missing file is what a hand-made ``/opt/ml`` tree lacks: no hyperparameters, channels taken
from the folders, one host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from boxtune.errors import DatasetError, HyperparameterError, TrainingError, read_json

MODEL_ID_KEY = "model_id"
# Keys the platform's SDKs add for their own containers.
_PLATFORM_PREFIXES = ("sagemaker_", "_")
# Channel modes that present the data as files under input/data/<channel>/.
FILE_MODES = ("File", "FastFile")


@dataclass(frozen=True)
class JobHyperparameters:
    """``values`` for :func:`boxtune.train.train`; ``model_id`` the ``model_id`` key (None when
    absent); ``ignored`` the platform's own keys that were left out."""

    values: dict[str, object]
    model_id: str | None
    ignored: tuple[str, ...]


def read_hyperparameters(path: Path) -> JobHyperparameters:
    if not path.exists():
        return JobHyperparameters({}, None, ())
    raw = read_json(path, kind=HyperparameterError)
    if not isinstance(raw, dict):
        raise HyperparameterError(
            f"expected a JSON object of name -> value, got {type(raw).__name__}",
            where=str(path),
            hint='write e.g. {"epochs": "5", "learning_rate": "0.001"}',
        )
    values: dict[str, object] = {}
    ignored = []
    for name, value in raw.items():
        if name.startswith(_PLATFORM_PREFIXES):
            ignored.append(name)
        else:
            values[name] = _decoded(value)
    model_id = values.pop(MODEL_ID_KEY, None)
    if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
        raise HyperparameterError(
            f"{MODEL_ID_KEY}={model_id!r} is not a model id",
            where=str(path),
            hint=f"give a catalog id (`boxtune models list`), or leave {MODEL_ID_KEY} out for "
            "the default model",
        )
    return JobHyperparameters(values, model_id.strip() if model_id else None, tuple(ignored))


def _decoded(value: object) -> object:
    """A framework estimator's JSON-encoded string (``"\\"adam\\""``) as the string itself;
    any other value as it is (the trainer accepts strings and JSON numbers or booleans)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    input_mode: str
    content_type: str | None


def read_input_data_config(path: Path) -> dict[str, ChannelConfig] | None:
    """The channels the job declares (None when the file is absent), each in a file mode."""
    if not path.exists():
        return None
    raw = read_json(path, kind=DatasetError)
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise DatasetError(
            "expected a JSON object of channel name -> settings",
            where=str(path),
            hint='e.g. {"training": {"TrainingInputMode": "File"}}',
        )
    channels = {}
    for name, settings in raw.items():
        mode = str(settings.get("TrainingInputMode") or "File")
        if mode not in FILE_MODES:
            raise DatasetError(
                f"channel {name!r} uses TrainingInputMode {mode}; boxtune reads a channel's "
                f"files ({' or '.join(FILE_MODES)} mode)",
                where=str(path),
                hint="give the channel input_mode='File' (TrainingInput(s3_data=..., "
                "input_mode='File')) or set the estimator's input_mode='File'",
            )
        content_type = settings.get("ContentType")
        channels[name] = ChannelConfig(name, mode, str(content_type) if content_type else None)
    return channels


def check_single_host(path: Path) -> None:
    """Refuse a job spread over several hosts: boxtune trains on one."""
    if not path.exists():
        return
    raw = read_json(path, kind=TrainingError)
    hosts = raw.get("hosts") if isinstance(raw, dict) else None
    if not isinstance(hosts, list):
        raise TrainingError(
            "expected a JSON object with a 'hosts' list",
            where=str(path),
            hint='the platform writes e.g. {"current_host": "algo-1", "hosts": ["algo-1"]}',
        )
    if len(hosts) > 1:
        raise TrainingError(
            f"the job runs on {len(hosts)} hosts ({', '.join(map(str, hosts))}), and boxtune "
            "trains on a single host: it has no distributed training",
            where=str(path),
            hint="set instance_count=1 (InstanceCount 1 in the job's ResourceConfig); for a "
            "faster run pick a larger instance type instead",
        )

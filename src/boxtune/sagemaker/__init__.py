"""The managed SDK's module paths over boxtune: change ``import sagemaker`` to
``import boxtune.sagemaker as sagemaker`` and ``from sagemaker.X import Y`` to
``from boxtune.sagemaker.X import Y``; the rest of the code stays as it is.

Everything runs on this machine: training jobs and endpoints are boxtune's background jobs
(``boxtune jobs list``), ``s3://`` goes to your S3-compatible server or, under the default
bucket, to a local folder. Arguments that only mean something on the platform (roles,
instance types, images) are accepted with one notice. Same classes, positional order, keyword
names, return types and exception classes as the SDK v2 for what the object-detection
notebooks use (a test compares them with the real SDK).

Imports are lazy, so ``import boxtune.sagemaker`` loads no framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Session": "boxtune.sagemaker.session",
    "get_execution_role": "boxtune.sagemaker.session",
    "Estimator": "boxtune.sagemaker.estimator",
    "Model": "boxtune.sagemaker.model",
    "Predictor": "boxtune.sagemaker.predictor",
    "Transformer": "boxtune.sagemaker.transformer",
    "TrainingInput": "boxtune.sagemaker.inputs",
    "TrainingJobAnalytics": "boxtune.sagemaker.analytics",
    "HyperparameterTuningJobAnalytics": "boxtune.sagemaker.analytics",
}
_SUBMODULES = (
    "analytics",
    "deserializers",
    "estimator",
    "exceptions",
    "hyperparameters",
    "image_uris",
    "inputs",
    "jumpstart",
    "model",
    "model_uris",
    "parameter",
    "predictor",
    "script_uris",
    "serializers",
    "session",
    "transformer",
    "tuner",
    "utils",
)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"boxtune.sagemaker.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'boxtune.sagemaker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

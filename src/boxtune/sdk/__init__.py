"""The SDK: the managed platform's Estimator / Model / Predictor shapes, running locally.

Imports are lazy (``boxtune.sdk.Estimator`` loads its module on first use) so that
``import boxtune`` stays cheap. Replace ``sagemaker`` imports with these names::

    from boxtune.sdk import Estimator, Model, Predictor, hyperparameters, model_uris
    from boxtune.sdk import image_uris, script_uris, list_models, name_from_base
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Estimator": "boxtune.sdk.estimator",
    "JumpStartEstimator": ("boxtune.sdk.estimator", "Estimator"),
    "TrainingJob": "boxtune.sdk.estimator",
    "Model": "boxtune.sdk.model",
    "JumpStartModel": ("boxtune.sdk.model", "Model"),
    "Predictor": "boxtune.sdk.predictor",
    "JSONResponse": "boxtune.sdk.predictor",
    "model_uris": "boxtune.sdk.uris",
    "image_uris": "boxtune.sdk.uris",
    "script_uris": "boxtune.sdk.uris",
    "list_models": "boxtune.sdk.listing",
    "list_jumpstart_models": ("boxtune.sdk.listing", "list_models"),
    "name_from_base": "boxtune.sdk.utils",
    "Session": "boxtune.sdk.session",
    "get_execution_role": "boxtune.sdk.session",
}
_SUBMODULES = {"hyperparameters": "boxtune.sdk.hyperparameters"}

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'boxtune.sdk' has no attribute {name!r}")
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""What the signature test compares: the managed SDK v2's callables and classes that the
object-detection notebooks use, by module path (boxtune.sagemaker mirrors the same paths).

``python sdk_signatures.py sagemaker OUT.json`` (run with the SDK's own venv) writes them as JSON
(the SDK prints notices on stdout); the test does the same for boxtune.sagemaker with
:func:`describe` and compares.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from typing import Any

# module -> names (Class, Class.method or function) compared.
CALLABLES: dict[str, list[str]] = {
    "session": [
        "Session.__init__",
        "Session.default_bucket",
        "Session.get_caller_identity_arn",
        "Session.account_id",
        "Session.upload_data",
        "Session.download_data",
        "Session.upload_string_as_file_body",
        "Session.read_s3_file",
        "Session.list_s3_files",
        "Session.describe_training_job",
        "Session.describe_tuning_job",
        "Session.logs_for_job",
        "Session.wait_for_job",
        "Session.delete_endpoint",
        "Session.delete_model",
        "get_execution_role",
    ],
    "estimator": [
        "Estimator.__init__",
        "Estimator.fit",
        "Estimator.deploy",
        "Estimator.attach",
        "Estimator.transformer",
        "Estimator.hyperparameters",
        "Estimator.set_hyperparameters",
        "Estimator.training_image_uri",
        "Estimator.logs",
    ],
    "jumpstart.estimator": [
        "JumpStartEstimator.__init__",
        "JumpStartEstimator.fit",
        "JumpStartEstimator.deploy",
        "JumpStartEstimator.attach",
    ],
    "jumpstart.model": ["JumpStartModel.__init__", "JumpStartModel.deploy"],
    "jumpstart.notebook_utils": ["list_jumpstart_models"],
    "jumpstart.filters": ["And.__init__", "Or.__init__"],
    "model": ["Model.__init__", "Model.deploy", "Model.transformer", "Model.delete_model"],
    "predictor": [
        "Predictor.__init__",
        "Predictor.predict",
        "Predictor.delete_endpoint",
        "Predictor.delete_model",
    ],
    "serializers": [
        "IdentitySerializer.__init__",
        "JSONSerializer.__init__",
        "DataSerializer.__init__",
        "CSVSerializer.__init__",
        "NumpySerializer.__init__",
        "IdentitySerializer.serialize",
    ],
    "deserializers": [
        "BytesDeserializer.__init__",
        "JSONDeserializer.__init__",
        "StringDeserializer.__init__",
        "StreamDeserializer.__init__",
        "NumpyDeserializer.__init__",
        "BytesDeserializer.deserialize",
    ],
    "tuner": [
        "HyperparameterTuner.__init__",
        "HyperparameterTuner.fit",
        "HyperparameterTuner.deploy",
        "HyperparameterTuner.best_training_job",
        "HyperparameterTuner.best_estimator",
        "HyperparameterTuner.analytics",
        "HyperparameterTuner.describe",
        "HyperparameterTuner.wait",
        "HyperparameterTuner.attach",
        "HyperparameterTuner.stop_tuning_job",
        "ContinuousParameter.__init__",
        "IntegerParameter.__init__",
        "CategoricalParameter.__init__",
    ],
    "analytics": [
        "TrainingJobAnalytics.__init__",
        "TrainingJobAnalytics.dataframe",
        "TrainingJobAnalytics.export_csv",
        "HyperparameterTuningJobAnalytics.__init__",
        "HyperparameterTuningJobAnalytics.dataframe",
    ],
    "transformer": ["Transformer.__init__", "Transformer.transform", "Transformer.wait"],
    "inputs": ["TrainingInput.__init__"],
    "utils": ["name_from_base"],
    "hyperparameters": ["retrieve_default", "validate"],
    "image_uris": ["retrieve"],
    "model_uris": ["retrieve"],
    "script_uris": ["retrieve"],
    "exceptions": ["UnexpectedStatusException.__init__"],
}
# module -> classes whose built-in exception bases are compared.
EXCEPTIONS: dict[str, list[str]] = {
    "exceptions": ["UnexpectedStatusException"],
    "jumpstart.exceptions": ["JumpStartHyperparametersError"],
}
# Names ``import sagemaker`` gives that notebooks use.
TOP_LEVEL = [
    "Session",
    "get_execution_role",
    "Model",
    "Predictor",
    "TrainingInput",
    "TrainingJobAnalytics",
    "HyperparameterTuningJobAnalytics",
    "image_uris",
    "model_uris",
    "script_uris",
    "hyperparameters",
    "session",
    "estimator",
    "model",
    "predictor",
    "serializers",
    "deserializers",
    "tuner",
    "utils",
    "jumpstart",
]
LITERALS = (str, int, float, bool, type(None))


def _default(value: Any) -> dict[str, Any]:
    if value is inspect.Parameter.empty:
        return {"kind": "required"}
    if isinstance(value, LITERALS):
        return {"kind": "literal", "value": value}
    return {"kind": "object", "type": type(value).__name__}


def parameters(function: Any) -> list[dict[str, Any]]:
    signature = inspect.signature(function)
    return [
        {"name": p.name, "kind": p.kind.name, "default": _default(p.default)}
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
    ]


def _resolve(root: str, module: str, dotted: str) -> Any:
    value: Any = importlib.import_module(f"{root}.{module}")
    for part in dotted.split("."):
        value = inspect.getattr_static(value, part) if part == "__init__" else getattr(value, part)
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    return value


def describe(root: str) -> dict[str, Any]:
    """Everything compared, for the package ``root`` (``sagemaker`` or ``boxtune.sagemaker``)."""
    top = importlib.import_module(root)
    return {
        "callables": {
            f"{module}:{name}": parameters(_resolve(root, module, name))
            for module, names in CALLABLES.items()
            for name in names
        },
        "exceptions": {
            f"{module}:{name}": [
                base.__name__
                for base in getattr(importlib.import_module(f"{root}.{module}"), name).__mro__
                if base.__module__ == "builtins"
            ]
            for module, names in EXCEPTIONS.items()
            for name in names
        },
        "top_level": [name for name in TOP_LEVEL if hasattr(top, name)],
    }


if __name__ == "__main__":
    root, output = sys.argv[1], sys.argv[2]
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(describe(root), handle)

"""boxtune: fine-tune object detectors on your own images and serve them."""

__version__ = "0.1.0"

# The SDK at top level (``boxtune.Estimator``, ``boxtune.hyperparameters``, ...), loaded lazily
# on first use so that ``import boxtune`` stays cheap.
_SDK_EXPORTS = (
    "Estimator",
    "Model",
    "Predictor",
    "hyperparameters",
    "model_uris",
    "image_uris",
    "script_uris",
    "list_models",
    "name_from_base",
    "Session",
    "get_execution_role",
)


def __getattr__(name: str):
    if name in _SDK_EXPORTS:
        import importlib

        value = getattr(importlib.import_module("boxtune.sdk"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'boxtune' has no attribute {name!r}")

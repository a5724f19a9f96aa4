"""The PyTorch engine: the default EfficientDet-Lite0 model and torchvision's detectors.

Importing this package is cheap (no torch): the registry in ``boxtune.engines`` imports
``boxtune.engines.torch.engine`` only when a torch model is used.
"""

import warnings

from boxtune.errors import BoxtuneWarning

# The runtimes this engine serves on, the default first (the registry in boxtune.engines
# repeats them, so that the CLI knows them without importing the engine).
INT8_BACKEND = "onnxruntime-int8"
BACKENDS = ("onnxruntime", INT8_BACKEND, "torch")


def fall_back_to_torch(reason: str) -> None:
    """Warn that a runner other than the one asked for serves (torch-free, to be called
    where the choice is made: the warning points at that caller's caller)."""
    warnings.warn(f"{reason}; serving with the torch backend", BoxtuneWarning, stacklevel=3)

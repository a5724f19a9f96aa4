"""The PyTorch engine: the default EfficientDet-Lite0 model and torchvision's detectors."""

from boxtune.engines.torch.detector import TorchDetector
from boxtune.engines.torch.engine import TorchEngine, build_network

__all__ = ["TorchDetector", "TorchEngine", "build_network"]

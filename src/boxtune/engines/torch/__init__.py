"""The PyTorch engine: the default EfficientDet-Lite0 model and torchvision's detectors.

Importing this package is cheap (no torch): the registry in ``boxtune.engines`` imports
``boxtune.engines.torch.engine`` only when a torch model is used.
"""

"""``sagemaker.jumpstart.exceptions``: the hyperparameter validation error."""

from __future__ import annotations

from boxtune.errors import HyperparameterError


class JumpStartHyperparametersError(HyperparameterError, ValueError):
    """An unknown hyperparameter name or an out-of-range value (every problem listed)."""

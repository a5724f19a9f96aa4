"""Training: hyperparameters, the transfer-learning loop, checkpoints and early stopping.

Nothing here imports a framework: the loop drives any engine through
:class:`boxtune.engines.base.Detector`.
"""

from boxtune.train.hyperparameters import (
    Hyperparameters,
    parse_hyperparameters,
    retrieve_default,
)
from boxtune.train.loop import TrainResult, train

__all__ = [
    "Hyperparameters",
    "TrainResult",
    "parse_hyperparameters",
    "retrieve_default",
    "train",
]

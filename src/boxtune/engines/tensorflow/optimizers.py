"""The managed algorithm's six optimizers as Keras's own (their option names are Keras's)."""

from __future__ import annotations

import keras

from boxtune.engines.base import OptimizerSettings
from boxtune.engines.optimizer_options import check_optimizer, ignored_options


def build_optimizer(settings: OptimizerSettings) -> tuple[keras.optimizers.Optimizer, list[str]]:
    """The optimizer and the names of the options it does not use."""
    name = check_optimizer(settings)
    lr = float(settings.learning_rate)
    epsilon = float(settings.epsilon)
    if name == "adam":
        optimizer = keras.optimizers.Adam(
            learning_rate=lr,
            beta_1=float(settings.beta_1),
            beta_2=float(settings.beta_2),
            epsilon=epsilon,
        )
    elif name in ("sgd", "nesterov"):
        optimizer = keras.optimizers.SGD(
            learning_rate=lr, momentum=float(settings.momentum), nesterov=name == "nesterov"
        )
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(
            learning_rate=lr, rho=float(settings.rho), epsilon=epsilon
        )
    elif name == "adagrad":
        optimizer = keras.optimizers.Adagrad(
            learning_rate=lr,
            initial_accumulator_value=float(settings.initial_accumulator_value),
            epsilon=epsilon,
        )
    else:
        optimizer = keras.optimizers.Adadelta(
            learning_rate=lr, rho=float(settings.rho), epsilon=epsilon
        )
    return optimizer, ignored_options(name)

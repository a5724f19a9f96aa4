"""The managed algorithm's optimizers and which options each reads (framework-free, shared by
the engines; the names are Keras's, which the reference uses)."""

from __future__ import annotations

from boxtune.engines.base import OptimizerSettings
from boxtune.errors import HyperparameterError

OPTIMIZER_OPTIONS: dict[str, tuple[str, ...]] = {
    "adam": ("beta_1", "beta_2", "epsilon"),
    "sgd": ("momentum",),
    "nesterov": ("momentum",),
    "rmsprop": ("rho", "epsilon"),
    "adagrad": ("initial_accumulator_value", "epsilon"),
    "adadelta": ("rho", "epsilon"),
}
ALL_OPTIONS = ("momentum", "beta_1", "beta_2", "epsilon", "rho", "initial_accumulator_value")


def check_optimizer(settings: OptimizerSettings) -> str:
    """The optimizer's lower-case name; unknown names and nesterov without momentum are a
    HyperparameterError."""
    name = str(settings.optimizer).lower()
    if name not in OPTIMIZER_OPTIONS:
        raise HyperparameterError(
            f"unknown optimizer {name!r}",
            where="hyperparameter optimizer",
            hint=f"use one of {', '.join(OPTIMIZER_OPTIONS)}",
        )
    if name == "nesterov" and float(settings.momentum) <= 0:
        raise HyperparameterError(
            "nesterov needs a momentum > 0",
            where="hyperparameter momentum",
            hint="set momentum (e.g. 0.9) or use optimizer=sgd",
        )
    return name


def ignored_options(name: str) -> list[str]:
    return [option for option in ALL_OPTIONS if option not in OPTIMIZER_OPTIONS[name]]

"""The reference's six optimizers and their options, mapped onto torch.optim."""

from __future__ import annotations

from collections.abc import Iterable

import torch

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


def build_optimizer(
    params: Iterable[torch.nn.Parameter], hp: OptimizerSettings
) -> tuple[torch.optim.Optimizer, list[str]]:
    """``hp`` has ``optimizer``, ``learning_rate`` and the options above as attributes.

    Returns the optimizer and the names of options the chosen optimizer does not use.
    """
    name = str(hp.optimizer).lower()
    if name not in OPTIMIZER_OPTIONS:
        raise HyperparameterError(
            f"unknown optimizer {name!r}",
            where="hyperparameter optimizer",
            hint=f"use one of {', '.join(OPTIMIZER_OPTIONS)}",
        )
    lr = float(hp.learning_rate)
    eps = float(hp.epsilon)
    rho = float(hp.rho)
    momentum = float(hp.momentum)
    params = [p for p in params if p.requires_grad]
    if name == "adam":
        betas = (float(hp.beta_1), float(hp.beta_2))
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    elif name in {"sgd", "nesterov"}:
        if name == "nesterov" and momentum <= 0:
            raise HyperparameterError(
                "nesterov needs a momentum > 0",
                where="hyperparameter momentum",
                hint="set momentum (e.g. 0.9) or use optimizer=sgd",
            )
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov")
    elif name == "rmsprop":
        optimizer = torch.optim.RMSprop(params, lr=lr, alpha=rho, eps=eps)
    elif name == "adagrad":
        optimizer = torch.optim.Adagrad(
            params,
            lr=lr,
            eps=eps,
            initial_accumulator_value=float(hp.initial_accumulator_value),
        )
    else:
        optimizer = torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps)
    ignored = [option for option in ALL_OPTIONS if option not in OPTIMIZER_OPTIONS[name]]
    return optimizer, ignored

"""The reference's six optimizers and their options, mapped onto torch.optim."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from boxtune.engines.base import OptimizerSettings
from boxtune.engines.optimizer_options import check_optimizer, ignored_options


def build_optimizer(
    params: Iterable[torch.nn.Parameter], hp: OptimizerSettings
) -> tuple[torch.optim.Optimizer, list[str]]:
    """``hp`` has ``optimizer``, ``learning_rate`` and the options above as attributes.

    Returns the optimizer and the names of options the chosen optimizer does not use.
    """
    name = check_optimizer(hp)
    lr = float(hp.learning_rate)
    eps = float(hp.epsilon)
    rho = float(hp.rho)
    momentum = float(hp.momentum)
    params = [p for p in params if p.requires_grad]
    if name == "adam":
        betas = (float(hp.beta_1), float(hp.beta_2))
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    elif name in {"sgd", "nesterov"}:
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
    return optimizer, ignored_options(name)

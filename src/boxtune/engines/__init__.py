"""Engines: one subpackage per framework behind the interface of ``boxtune.engines.base``.

Frameworks are imported only when an engine is asked for, so ``import boxtune.engines`` stays
cheap for the CLI and the server.
"""

from __future__ import annotations

import importlib

from boxtune.engines.base import Backend, Detector, Init, Runner
from boxtune.errors import ModelError

# engine name -> "module:class"; a TensorFlow engine plugs in here.
_ENGINES = {"torch": "boxtune.engines.torch.engine:TorchEngine"}
_instances: dict = {}


def available_engines() -> list[str]:
    return list(_ENGINES)


def get_engine(name: str):
    """The engine called ``name`` (e.g. ``"torch"``, the ``engine`` field of specs/artifacts)."""
    if name not in _ENGINES:
        raise ModelError(
            f"unknown engine {name!r}",
            hint=f"this boxtune knows {', '.join(_ENGINES)}; upgrade it to load this model",
        )
    if name not in _instances:
        module_name, class_name = _ENGINES[name].split(":")
        _instances[name] = getattr(importlib.import_module(module_name), class_name)()
    return _instances[name]


__all__ = ["Backend", "Detector", "Init", "Runner", "available_engines", "get_engine"]

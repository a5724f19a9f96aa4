"""Engines: one subpackage per framework behind the interface of ``boxtune.engines.base``.

Frameworks are imported only when an engine is asked for, so ``import boxtune.engines`` stays
cheap for the CLI and the server. A new framework is one subpackage plus one entry below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from boxtune.engines.base import (
    Detector,
    Engine,
    Init,
    OptimizerSettings,
    Runner,
    framework_imports,
)
from boxtune.errors import ModelError


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine lives, and what the CLI may know about it without importing it."""

    module: str
    class_name: str
    backends: tuple[str, ...]  # the default first; the engine class declares the same
    extra: str  # the pip extra that installs its framework


_ENGINES: dict[str, EngineEntry] = {
    "torch": EngineEntry(
        "boxtune.engines.torch.engine",
        "TorchEngine",
        ("onnxruntime", "onnxruntime-int8", "torch"),
        extra="torch",
    ),
    "tensorflow": EngineEntry(
        "boxtune.engines.tensorflow.engine",
        "TensorFlowEngine",
        ("onnxruntime", "savedmodel", "keras"),
        extra="tensorflow",
    ),
}
_instances: dict[str, Engine] = {}


def available_engines() -> list[str]:
    return list(_ENGINES)


def available_backends() -> list[str]:
    """Every backend some engine offers (for ``--backend`` choices), in registry order."""
    names: list[str] = []
    for entry in _ENGINES.values():
        names += [b for b in entry.backends if b not in names]
    return names


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (e.g. ``"torch"``, the ``engine`` field of specs/artifacts)."""
    if name not in _ENGINES:
        raise ModelError(
            f"unknown engine {name!r}",
            hint=f"this boxtune knows {', '.join(_ENGINES)}; upgrade it to load this model",
        )
    if name not in _instances:
        entry = _ENGINES[name]
        with framework_imports(name, entry.extra):
            module = importlib.import_module(entry.module)
        engine_class = getattr(module, entry.class_name)
        engine = engine_class()
        if not isinstance(engine, Engine) or engine.backends != entry.backends:
            raise ModelError(
                f"{entry.module}.{entry.class_name} does not match its registry entry",
                hint="an Engine subclass whose backends equal the registry's is needed",
            )
        _instances[name] = engine
    return _instances[name]


__all__ = [
    "Detector",
    "Engine",
    "EngineEntry",
    "Init",
    "OptimizerSettings",
    "Runner",
    "available_backends",
    "available_engines",
    "get_engine",
]

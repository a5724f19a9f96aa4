"""What a model reference names, by one rule, and the one way to open a runner from it.

A reference is what users type after ``--model``/``--model-id``, pass as ``model_id``,
``model_data`` or a ``model`` channel. Training, serving, evaluation, batch prediction and the
SDK all decide with :func:`parse_model_ref`:

- ``py:package.module:function``: ``function(backend) -> Runner`` (custom runners, tests);
- an ``s3://`` (or other fsspec) URI, a ``file://`` URI, or an existing path: an artifact
  (directory or ``model.tar.gz``);
- something shaped like a path (``.tar.gz``/``.tgz``, a ``/``, starting with ``.`` or ``~``)
  that does not exist: an error naming the path (not "unknown model_id");
- anything else: a catalog ``model_id``.

Engines, artifacts and the catalog are imported lazily, so that parsing stays cheap for the
CLI and the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from boxtune.engines.base import Runner
from boxtune.errors import ModelError
from boxtune.storage import is_remote

if TYPE_CHECKING:
    from boxtune.artifacts import Artifact
    from boxtune.catalog import ModelSpec

RefKind = Literal["artifact", "model_id", "python"]
PYTHON_PREFIX = "py:"
FILE_SCHEME = "file://"


@dataclass(frozen=True)
class ModelRef:
    """``value``: the artifact's local path (``file://`` and ``~`` resolved) or remote URI,
    the model_id, or the ``module:function`` of a custom runner."""

    kind: RefKind
    value: str

    def __str__(self) -> str:
        return self.value


def parse_model_ref(reference: str, *, where: str = "--model") -> ModelRef:
    """Decide what ``reference`` names; a path-shaped reference that does not exist is a
    ModelError (``where`` says which argument it came from)."""
    ref = str(reference).strip()
    if ref.startswith(PYTHON_PREFIX):
        return ModelRef("python", ref[len(PYTHON_PREFIX) :])
    if is_remote(ref):
        return ModelRef("artifact", ref)
    path = Path(ref.removeprefix(FILE_SCHEME)).expanduser()
    if path.exists():
        return ModelRef("artifact", str(path))
    path_shaped = (
        ref.startswith((FILE_SCHEME, ".", "~"))
        or ref.endswith((".tar.gz", ".tgz"))
        or "/" in ref
        or "\\" in ref
    )
    if path_shaped:
        raise ModelError(
            f"no model artifact at {path}",
            where=where,
            hint="give an artifact directory or model.tar.gz written by `boxtune train`, an "
            "s3:// URI, or a catalog model_id (`boxtune models list`)",
        )
    return ModelRef("model_id", ref)


def check_model_ref(reference: str, *, where: str = "--model") -> ModelRef:
    """Fail fast (before a server starts) on references that cannot load; cheap checks only."""
    ref = parse_model_ref(reference, where=where)
    if ref.kind == "model_id":
        deployable_spec(ref.value, where=where)
    elif ref.kind == "python":
        _python_factory(ref.value, where)
    return ref


@dataclass
class OpenedModel:
    """A runner, a one-line description of what was loaded, and the artifact it came from
    (``None`` for pretrained catalog models and custom runners)."""

    runner: Runner
    description: str
    artifact: Artifact | None = None


def open_runner(
    reference: str, backend: str | None = None, *, where: str = "--model"
) -> OpenedModel:
    """The inference runner for ``reference`` (``backend=None``: the engine's default)."""
    from boxtune import engines

    ref = parse_model_ref(reference, where=where)
    if ref.kind == "python":
        runner = _python_factory(ref.value, where)(backend)
        return OpenedModel(_checked(runner, ref, where), f"{ref.value} (custom runner)")
    if ref.kind == "model_id":
        spec = deployable_spec(ref.value, where=where)
        runner = engines.get_engine(spec.engine).pretrained_runner(spec, backend)
        return OpenedModel(runner, f"{spec.model_id} (pretrained, {runner.backend})")
    from boxtune.artifacts import load_artifact

    artifact = load_artifact(ref.value)
    runner = engines.get_engine(artifact.engine).load_runner(artifact, backend)
    description = f"{artifact.model_id} from {ref.value} ({runner.backend})"
    return OpenedModel(runner, description, artifact)


def deployable_spec(model_id: str, *, where: str = "--model", hint: str | None = None) -> ModelSpec:
    """The catalog spec of ``model_id``, which must be deployable as is (``hint``: how the
    caller's user fine-tunes it, in the caller's own terms)."""
    from boxtune.catalog import get_spec

    spec = get_spec(model_id)
    if not spec.deployable:
        raise ModelError(
            f"{model_id} is not deployable as is: it cannot be deployed without fine-tuning, "
            f"its pretrained weights cover the {spec.weights.describes} only (no detection head "
            "for your classes)",
            where=where,
            hint=hint
            or f"fine-tune it first (`boxtune train --model-id {model_id} ...`) and serve the "
            "artifact it writes, or pick a COCO-pretrained deployable id from "
            "`boxtune models list`",
        )
    return spec


def _python_factory(target: str, where: str) -> Callable[[str | None], Runner]:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ModelError(
            f"bad custom runner reference {PYTHON_PREFIX}{target!r}",
            where=where,
            hint="write it as py:package.module:function, where function(backend) -> Runner",
        )
    try:
        module = importlib.import_module(module_name)
        reason = f"{module_name} defines no function {attribute!r}"
    except ImportError as exc:
        module, reason = None, str(exc)
    factory = vars(module).get(attribute) if module is not None else None
    if not callable(factory):
        raise ModelError(
            f"cannot import {target}: {reason}",
            where=where,
            hint="check that the module is importable (PYTHONPATH) and defines that function",
        )
    return factory


def _checked(runner: object, ref: ModelRef, where: str) -> Runner:
    if not isinstance(runner, Runner):
        raise ModelError(
            f"{ref} did not give a Runner (got {type(runner).__name__})",
            where=where,
            hint="return an instance of a boxtune.engines.base.Runner subclass",
        )
    return runner

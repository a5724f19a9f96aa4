"""From a model reference (artifact location, catalog model_id, or ``py:`` factory) to a Runner.

The engines, artifacts and catalog modules are imported lazily so that the server's cheap
parts (decoding, contract, HTTP) import without torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from boxtune.engines.base import Runner
from boxtune.errors import ModelError
from boxtune.storage import is_remote

RefKind = Literal["artifact", "model_id", "python"]
PYTHON_PREFIX = "py:"


@dataclass(frozen=True)
class ModelRef:
    kind: RefKind
    value: str

    def __str__(self) -> str:
        return self.value


def classify_model_ref(model_ref: str) -> ModelRef:
    """Decide what ``model_ref`` names; raises ModelError for a local path that does not exist.

    - ``py:package.module:function``: ``function(backend) -> Runner`` (custom runners, tests)
    - an ``s3://`` (or other fsspec) URI, an existing path, or a ``.tar.gz``: an artifact
    - anything else: a catalog model_id
    """
    ref = str(model_ref).strip()
    if ref.startswith(PYTHON_PREFIX):
        return ModelRef("python", ref[len(PYTHON_PREFIX) :])
    if is_remote(ref):
        return ModelRef("artifact", ref)
    path = Path(ref.removeprefix("file://")).expanduser()
    if path.exists():
        return ModelRef("artifact", str(path))
    if ref.endswith((".tar.gz", ".tgz")) or "/" in ref or "\\" in ref or ref.startswith("."):
        raise ModelError(
            f"no model artifact at {path}",
            where="--model",
            hint="give an artifact directory or model.tar.gz written by `boxtune train`, an "
            "s3:// URI, or a deployable catalog model_id (`boxtune models list`)",
        )
    return ModelRef("model_id", ref)


def check_model_ref(model_ref: str) -> ModelRef:
    """Fail fast (before a server starts) on references that cannot load; cheap checks only."""
    ref = classify_model_ref(model_ref)
    if ref.kind == "model_id":
        _deployable_spec(ref.value)
    elif ref.kind == "python":
        _python_factory(ref.value)
    return ref


def load_runner(model_ref: str, backend: str = "onnxruntime") -> tuple[Runner, str]:
    """The Runner for ``model_ref`` and a one-line description of what was loaded."""
    ref = classify_model_ref(model_ref)
    if ref.kind == "python":
        runner = _python_factory(ref.value)(backend)
        return _checked(runner, ref), f"{ref.value} (custom runner)"
    from boxtune.engines import get_engine

    if ref.kind == "model_id":
        spec = _deployable_spec(ref.value)
        runner = get_engine(spec.engine).pretrained_runner(spec, backend)
        return _checked(runner, ref), f"{spec.model_id} (pretrained, {backend})"
    from boxtune.artifacts import load_artifact

    artifact = load_artifact(ref.value)
    runner = get_engine(artifact.engine).load_runner(artifact, backend)
    return _checked(runner, ref), f"{artifact.model_id} from {ref.value} ({backend})"


def _deployable_spec(model_id: str):
    from boxtune.catalog import get_spec

    spec = get_spec(model_id)
    if not spec.deployable:
        raise ModelError(
            f"{model_id} is not deployable as is: it has no detection head for your classes",
            where="--model",
            hint=f"fine-tune it first (`boxtune train --model-id {model_id} ...`) and serve the "
            "artifact it writes, or pick a COCO-pretrained deployable id from "
            "`boxtune models list`",
        )
    return spec


def _python_factory(target: str):
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ModelError(
            f"bad custom runner reference {PYTHON_PREFIX}{target!r}",
            where="--model",
            hint="write it as py:package.module:function, where function(backend) -> Runner",
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ModelError(
            f"cannot import {target}: {exc}",
            where="--model",
            hint="check that the module is importable (PYTHONPATH) and defines that function",
        ) from exc
    return factory


def _checked(runner: object, ref: ModelRef) -> Runner:
    if not callable(getattr(runner, "predict", None)) or getattr(runner, "label_map", None) is None:
        raise ModelError(
            f"{ref} did not give a Runner (got {type(runner).__name__})",
            where="--model",
            hint="a runner needs predict(images) and label_map (boxtune.engines.base.Runner)",
        )
    return runner  # type: ignore[return-value]

"""ONNX Runtime sessions for CPU serving, shared by the engines (no framework needed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from boxtune.errors import ModelError, first_line, printable

ORT_THREADS_ENV = "BOXTUNE_ORT_THREADS"


def ort_threads() -> int:
    """Intra-op threads for onnxruntime: the CPUs this process may use (``BOXTUNE_ORT_THREADS``
    overrides); more threads than cores only adds contention."""
    override = os.environ.get(ORT_THREADS_ENV)
    if override:
        return max(1, int(override))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def cpu_session(model: Path | bytes, *, other_backend: str | None = None):
    """An optimised CPU session over an ONNX file or its bytes.

    Raises ModelError naming the file, onnxruntime's reason and a fix (``other_backend``: the
    engine's backend that does not need the file, offered as the way around it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(
            source, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, …)
        raise _load_error(model, exc, other_backend) from exc


# onnxruntime prefixes its messages with "[ONNXRuntimeError] : 7 : "; the status name follows.
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*")


def _load_error(model: Path | bytes, exc: Exception, other_backend: str | None) -> ModelError:
    reason = _ORT_PREFIX.sub("", first_line(exc))
    fix = "export the model again (retrain, or rebuild the artifact with this boxtune)"
    if other_backend:
        fix += f", or run it with --backend {other_backend}"
    in_memory = isinstance(model, bytes)
    return ModelError(
        f"onnxruntime cannot load the ONNX model: {reason}",
        where="the exported ONNX model (in memory)" if in_memory else printable(model),
        hint=f"the file is damaged or holds operators this onnxruntime lacks; {fix}",
    )

"""ONNX Runtime sessions for CPU serving, shared by the engines (no framework needed)."""

from __future__ import annotations

import os
from pathlib import Path

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


def cpu_session(model: Path | bytes):
    """An optimised CPU session over an ONNX file or its bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])

"""Atomic, pickle-free weight and checkpoint files."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from boxtune.errors import ModelError, storage_errors
from boxtune.fileio import atomic_path, set_default_mode

WEIGHTS_FILE = "weights.safetensors"
CHECKPOINT_SUFFIX = ".pt"  # one torch.save file per checkpoint (last.pt, best.pt)

# How torch.save's zip writer reports a failed write: no errno, only these (a full disk gives
# "[enforce fail at inline_container.cc:…] . unexpected pos 576 vs 534").
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")


def torch_write_failed(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _TORCH_WRITE_FAILURES)


def save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    # safetensors reports a full disk as "I/O error: No space left on device (os error 28)".
    with atomic_path(path) as tmp, storage_errors("writing the weights", path):
        save_file(state, str(tmp), metadata=metadata)
        set_default_mode(tmp)


def load_weights(module: nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(
            f"cannot read the weights file ({exc})",
            where=str(path),
            hint="the artifact is damaged; export it again",
        ) from exc
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"the weights do not fit the network: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}",
            where=str(path),
            hint="the artifact was written for another model_id or number of classes",
        )


def save_checkpoint_file(payload: dict, path: Path) -> None:
    """torch.save of tensors and plain Python values only, so ``weights_only=True`` loads it."""
    # Mapped inside atomic_path: the partial file still takes the space that decides "disk full".
    with (
        atomic_path(path) as tmp,
        storage_errors("writing the checkpoint", path, write_failure=torch_write_failed),
    ):
        torch.save(payload, tmp)


def load_checkpoint_file(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelError("checkpoint not found", where=str(path)) from exc
    except Exception as exc:
        raise ModelError(
            f"cannot load the checkpoint ({exc})",
            where=str(path),
            hint="it is damaged or holds non-tensor objects; delete it to start over",
        ) from exc

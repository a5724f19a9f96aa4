"""CLI sub-commands: thin argument parsing over the library modules."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``: any backend a registered engine offers; by default the model's engine
    picks its fastest (ONNX Runtime for torch models with an ONNX export)."""
    from boxtune.engines import available_backends

    parser.add_argument(
        "--backend",
        choices=available_backends(),
        default=None,
        help="inference backend (default: the model engine's fastest)",
    )

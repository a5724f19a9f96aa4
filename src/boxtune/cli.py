"""The ``boxtune`` command. Each area registers its sub-commands from ``boxtune.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from boxtune import __version__, console
from boxtune.errors import BoxtuneError

# Sub-command modules, each exposing ``register(subparsers)``; the handlers they set receive the
# parsed args and return an exit code.
COMMAND_MODULES = (
    "data",
    "models",
    "train",
    "evaluate",
    "predict",
    "serve",
    "export",
    "jobs",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boxtune",
        description="Fine-tune object detectors on your own images and serve them.",
    )
    parser.add_argument("--version", action="version", version=f"boxtune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"boxtune.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"boxtune.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    console.configure()
    try:
        return int(handler(args) or 0)
    except BoxtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

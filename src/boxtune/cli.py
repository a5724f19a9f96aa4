"""The ``boxtune`` command. Each area registers its sub-commands from ``boxtune.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys

from boxtune import __version__, console
from boxtune.errors import BoxtuneError, os_error, printable

# Sub-command modules, each exposing ``register(subparsers)``; the handlers they set receive the
# parsed args and return an exit code.
COMMAND_MODULES = (
    "data",
    "models",
    "train",
    "evaluate",
    "predict",
    "serve",
    "container",
    "export",
    "jobs",
    "tune",
    "cache",
    "sagemaker_api",
    "ui",
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
    console.tolerate_unprintable()  # before argparse prints anything
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    console.configure()
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BoxtuneError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if _stdout_closed():
            return _quit_on_closed_stdout()
        return _fail(os_error(exc, action=_command(args)))
    except OSError as exc:  # disk full, permissions, a directory for a file, a bad name …
        return _fail(os_error(exc, action=_command(args)))
    except UnicodeError as exc:
        if "surrogate" not in str(exc):
            raise
        return _fail(_undecodable_name(exc, _command(args)))


def _command(args: argparse.Namespace) -> str:
    """``boxtune train`` / ``boxtune data validate``: the command the user ran."""
    words = ["boxtune", str(args.command)]
    sub = next((getattr(args, k) for k in vars(args) if k.endswith("_command")), None)
    return " ".join([*words, sub] if isinstance(sub, str) else words)


def _fail(error: BoxtuneError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def _undecodable_name(exc: UnicodeError, action: str) -> BoxtuneError:
    # Linux names are bytes; those that are not UTF-8 reach Python as surrogate escapes, which
    # cannot be written where text must be UTF-8 (JSON, S3 keys).
    bad = exc.object[exc.start : exc.end] if isinstance(exc, UnicodeEncodeError) else ""
    return BoxtuneError(
        f"{action} failed: a file name is not valid UTF-8 ({printable(bad)})",
        hint="rename the file to a name that is valid UTF-8 (`convmv` renames many at once)",
    )


def _stdout_closed() -> bool:
    """Whether our stdout is a pipe whose reader has gone (poll says POLLERR), rather than some
    other connection the command wrote to."""
    if not hasattr(select, "poll"):  # Windows: a broken pipe there is most likely stdout
        return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):  # stdout closed or not a file descriptor
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


def _quit_on_closed_stdout() -> int:
    """The reader of our output went away (``boxtune … | head``): stop quietly, as Unix tools
    do, and keep Python from reporting the failed flush at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (tests capture it)
        pass
    finally:
        os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe


if __name__ == "__main__":
    sys.exit(main())

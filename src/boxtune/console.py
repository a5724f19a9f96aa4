"""Where boxtune's log records go when a program (the CLI, a job) asks for them.

Library modules only log, through ``logging.getLogger(__name__)`` (all under ``boxtune.``),
and warn through :mod:`warnings`; they never print. A program calls :func:`configure` once:

- the training log (logger ``boxtune.train.log``): plain lines on stdout, exactly as the managed
  platform's metric regexes read them (``[Epoch 0], Speed: …``);
- every other ``boxtune`` record at INFO or above: ``boxtune: message`` on stderr;
- :class:`~boxtune.errors.BoxtuneWarning` warnings: one line, ``boxtune: warning: message``,
  on stderr (other warnings keep Python's format).

``quiet`` keeps warnings and errors only. A library user who never calls :func:`configure` gets
Python's defaults (warnings shown, INFO silent) and can attach handlers as usual.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import sys
import warnings

from boxtune.errors import BoxtuneWarning

# The logger the trainer writes its per-epoch lines to; the one logger whose output is a contract.
TRAINING_LOG = "boxtune.train.log"

_MARK = "_boxtune_console"


class _StreamOfTheMoment(logging.StreamHandler):
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is when the record arrives, so that
    redirections made after configure() (tests, a job's supervisor) are honoured."""

    def __init__(self, name: str):
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass


def _handler(stream: str, fmt: str, level: int) -> logging.Handler:
    handler = _StreamOfTheMoment(stream)
    handler.setFormatter(logging.Formatter(fmt))
    handler.setLevel(level)
    setattr(handler, _MARK, True)
    return handler


_ESCAPE = "boxtune.escape"


def _escape(error: UnicodeError) -> tuple[str, int]:
    """``backslashreplace``, except that the bytes of a name that is not UTF-8 (surrogate
    escapes) show as themselves, ``\\xff``, as :func:`boxtune.errors.printable` shows them."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(_escaped(c) for c in bad), error.end


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # the byte a name held, escaped by surrogateescape
        code -= 0xDC00
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


codecs.register_error(_ESCAPE, _escape)


def tolerate_unprintable() -> None:
    """Make stdout and stderr escape what their encoding cannot write (a file name that is not
    UTF-8, under a strict UTF-8 or ASCII locale) instead of failing with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # replaced by a caller with a plain file-like object
            continue
        with contextlib.suppress(ValueError, OSError):  # closed, or one that cannot change
            reconfigure(errors=_ESCAPE)


def configure(*, quiet: bool = False) -> None:
    """Install boxtune's console handlers (idempotent: a second call replaces them)."""
    level = logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("boxtune")
    training = logging.getLogger(TRAINING_LOG)
    for logger in (root, training):
        for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(handler)
    root.setLevel(level)
    root.addHandler(_handler("stderr", "boxtune: %(message)s", level))
    root.propagate = False  # shown once, here, whatever handlers the root logger has
    # The training lines are the job's output, not notices: always shown, never prefixed.
    training.setLevel(logging.INFO)
    training.propagate = False
    training.addHandler(_handler("stdout", "%(message)s", logging.INFO))
    if not getattr(warnings.showwarning, _MARK, False):
        warnings.showwarning = _one_line_warnings(warnings.showwarning)


def _one_line_warnings(default):
    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, BoxtuneWarning):
            (file or sys.stderr).write(f"boxtune: warning: {message}\n")
        else:
            default(message, category, filename, lineno, file, line)

    setattr(show, _MARK, True)
    return show

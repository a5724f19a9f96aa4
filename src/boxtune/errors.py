"""User-facing errors: every one says what is wrong, where, and how to fix it."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BoxtuneError(Exception):
    """An error meant for the user, with an optional location and a hint.

    ``str(err)`` renders all three parts so that a CLI can print it as is.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class DatasetError(BoxtuneError):
    """The dataset cannot be read or is invalid."""


class ModelError(BoxtuneError):
    """A model id, artifact or weights file is wrong or unavailable."""


class HyperparameterError(BoxtuneError):
    """One or more hyperparameters are unknown or out of range.

    ``problems`` maps each offending name, as the caller spelled it, to what is wrong with its
    value (a form shows each next to its field); the message lists them all.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        problems: dict[str, str] | None = None,
    ):
        self.problems = dict(problems or {})
        super().__init__(message, where=where, hint=hint)


class TrainingError(BoxtuneError):
    """Training diverged or cannot continue."""


class BoxtuneWarning(UserWarning):
    """Something the user should know that does not stop the work (an ignored argument, a
    fallback). Library code raises it through :func:`warnings.warn`; the CLI shows it as one
    line (``boxtune.console``)."""


class StorageError(BoxtuneError):
    """The operating system refused a file operation (disk full, permissions, a bad path)."""


# errno -> (what it means, how to fix it); the path is the error's ``where``.
_OS_ERROR_ADVICE: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "the disk is full",
        "free space on that file system, or write somewhere else (--output, BOXTUNE_HOME, "
        "TMPDIR); `boxtune cache prune` frees boxtune's own caches",
    ),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or ask for a larger quota"),
    errno.EACCES: (
        "permission denied",
        "choose a location you may write to, or fix the permissions (ls -l, chmod, chown)",
    ),
    errno.EPERM: ("operation not permitted", "check the permissions and ownership of the path"),
    errno.EROFS: ("the file system is read-only", "write to a writable location"),
    errno.EISDIR: ("the path is a directory, a file was expected", "name a file, not a folder"),
    errno.ENOTDIR: (
        "a part of the path is a file, a directory was expected",
        "check each folder of the path exists and is a directory",
    ),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.EEXIST: ("the path already exists", "remove it or choose another name"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer workers"),
    errno.EIO: ("an input/output error from the device", "check the disk (dmesg) and retry"),
    errno.EFBIG: (
        "the file is too large for this file system or the file size limit",
        "write to another file system, or raise the limit (ulimit -f)",
    ),
    errno.ENFILE: ("too many files are open on the system", "close other programs and retry"),
    errno.ELOOP: ("too many symbolic links (a link loop)", "fix the symbolic links of the path"),
    errno.ENOTEMPTY: ("the directory is not empty", "empty it or choose another directory"),
    errno.EXDEV: (
        "the path is on another file system than its staging folder",
        "keep BOXTUNE_HOME and TMPDIR on the same file system as the output",
    ),
    errno.ESTALE: ("stale network file handle", "remount the network file system and retry"),
    errno.ETXTBSY: ("the file is busy (in use by a running program)", "stop that program"),
}


def os_error(
    exc: OSError,
    *,
    action: str,
    path: object = None,
    kind: type[BoxtuneError] = StorageError,
) -> BoxtuneError:
    """A :class:`StorageError` for ``exc`` raised while ``action`` (``"writing the artifact"``):
    what the errno means, the path (``path``, else the exception's file name) and a fix.
    ``kind``: another error class where the caller's area has its own (``DatasetError``).

    The path is shown with undecodable bytes escaped, so printing never fails."""
    # A failed rename names both paths; the destination is the one the user chose (the source
    # is a temp file next to it).
    where = path if path is not None else (exc.filename2 or exc.filename)
    meaning, hint = _OS_ERROR_ADVICE.get(
        exc.errno or -1, (exc.strerror or str(exc) or type(exc).__name__, "check the path")
    )
    detail = (
        f" ({exc.strerror})" if exc.strerror and exc.strerror.lower() != meaning.lower() else ""
    )
    return kind(
        f"{action} failed: {meaning}{detail}",
        where=printable(where) if where is not None else None,
        hint=hint,
    )


def printable(value: object) -> str:
    """``value`` as text that any terminal encoding can print: a path's undecodable bytes
    (surrogate escapes, ``b"\\xff"`` in a name) appear as ``\\xff``, other non-printable
    characters (control codes that could drive the terminal) as escapes, never as an error."""
    text = os.fsdecode(value) if isinstance(value, bytes | os.PathLike) else str(value)
    try:
        # The bytes the name really has, so b"\xff" shows as \xff (not as \udcff)
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no byte escaped
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


# -- failures of libraries that write files without raising OSError ---------------------------

# The messages of the errnos above as libraries print them without an OSError: Rust's io::Error
# in safetensors ("No space left on device (os error 28)"), TensorFlow's C++ status ("…; No space
# left on device").
_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")
_ERRNO_BY_MESSAGE = {os.strerror(code): code for code in _OS_ERROR_ADVICE}
# A write that stopped with (almost) no space left was stopped by the full disk.
_NEARLY_FULL_BYTES = 1 << 20


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (libraries append stack dumps), or its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def errno_in(exc: BaseException) -> int | None:
    """The errno behind ``exc``: its own, one named in its text, or that of an OSError it was
    raised from (or while handling)."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    text = str(exc)
    match = _OS_ERROR_IN_TEXT.search(text)
    if match:
        return int(match.group(1))
    for message, code in _ERRNO_BY_MESSAGE.items():
        if message in text:
            return code
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


def nearly_full(path: object) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has almost no
    space left for this user."""
    probe = os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        return shutil.disk_usage(probe).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def storage_error(
    exc: BaseException,
    *,
    action: str,
    path: object,
    write_failure: Callable[[BaseException], bool] | None = None,
) -> BoxtuneError | None:
    """``exc``, raised by a library while ``action`` on ``path``, as an error with the path and
    a fix when the operating system refused it; None when it is something else.

    ``write_failure`` recognises a library's own "the write failed" errors that carry no errno
    (torch.save's ``unexpected pos``): on a file system with almost no space left they are a
    full disk. Call it while the partial file still exists (its bytes are the used space)."""
    code = errno_in(exc)
    if code is None and write_failure is not None and write_failure(exc):
        if not nearly_full(path):
            return StorageError(
                f"{action} failed: the writer stopped ({first_line(exc)})",
                where=printable(path),
                hint="check the free space (df) and the disk (dmesg), then retry",
            )
        code = errno.ENOSPC
    if code is None:
        return None
    return os_error(OSError(code, os.strerror(code)), action=action, path=path)


@contextmanager
def storage_errors(
    action: str,
    path: object,
    *,
    write_failure: Callable[[BaseException], bool] | None = None,
) -> Iterator[None]:
    """Raise :func:`storage_error`'s error for a storage failure in the block; anything else
    passes through unchanged."""
    try:
        yield
    except BoxtuneError:
        raise
    except Exception as exc:
        error = storage_error(exc, action=action, path=path, write_failure=write_failure)
        if error is None:
            raise
        raise error from exc


# -- user files (JSON, YAML, text) ----------------------------------------------------------


def file_error(
    exc: BaseException,
    *,
    path: object,
    kind: type[BoxtuneError] = DatasetError,
    hint: str = "fix the file, then retry",
) -> BoxtuneError:
    """Why the user's file ``path`` cannot be read (``exc`` from opening it, decoding it as
    UTF-8 or parsing it), as a ``kind`` error naming the file."""
    where = printable(path)
    if isinstance(exc, OSError):
        return os_error(exc, action="reading the file", path=path, kind=kind)
    if isinstance(exc, RecursionError):
        # json.loads and PyYAML recurse once per level: a hostile depth exhausts the stack
        return kind(
            "nested too deeply to read (lists or objects inside each other beyond Python's "
            "recursion limit)",
            where=where,
            hint=f"no real file nests that deep: it is damaged or hostile; {hint}",
        )
    if isinstance(exc, UnicodeDecodeError):
        return kind(
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            where=where,
            hint="save the file as UTF-8",
        )
    if isinstance(exc, json.JSONDecodeError):
        return kind(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            where=where,
            hint=f"fix the syntax there (`python -m json.tool FILE` shows the same position); "
            f"{hint}",
        )
    return kind(
        f"cannot be parsed ({type(exc).__name__}: {first_line(exc)})", where=where, hint=hint
    )


# What file_error explains: OSError, UnicodeDecodeError and JSONDecodeError (ValueErrors),
# RecursionError (a hostile nesting depth).
FILE_READ_ERRORS = (OSError, ValueError, RecursionError)


def read_json(path: os.PathLike | str, *, kind: type[BoxtuneError] = DatasetError) -> object:
    """The JSON value in the UTF-8 file ``path``; every way it can fail is a ``kind`` error
    naming the file."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FILE_READ_ERRORS as exc:
        raise file_error(exc, path=path, kind=kind) from exc

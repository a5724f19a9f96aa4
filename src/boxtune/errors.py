"""User-facing errors: every one says what is wrong, where, and how to fix it."""

from __future__ import annotations

import errno
import os


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
    """One or more hyperparameters are unknown or out of range."""


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
}


def os_error(exc: OSError, *, action: str, path: object = None) -> StorageError:
    """A :class:`StorageError` for ``exc`` raised while ``action`` (``"writing the artifact"``):
    what the errno means, the path (``path``, else the exception's file name) and a fix.

    The path is shown with undecodable bytes escaped, so printing never fails."""
    where = path if path is not None else exc.filename
    meaning, hint = _OS_ERROR_ADVICE.get(
        exc.errno or -1, (exc.strerror or str(exc) or type(exc).__name__, "check the path")
    )
    detail = f" ({exc.strerror})" if exc.strerror and exc.strerror.lower() != meaning else ""
    return StorageError(
        f"{action} failed: {meaning}{detail}",
        where=printable(where) if where is not None else None,
        hint=hint,
    )


def printable(value: object) -> str:
    """``value`` as text that any terminal encoding can print: a path's undecodable bytes
    (surrogate escapes) and non-printable characters appear as escapes, never as an error."""
    text = os.fsdecode(value) if isinstance(value, bytes | os.PathLike) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

"""User-facing errors: every one says what is wrong, where, and how to fix it."""

from __future__ import annotations


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

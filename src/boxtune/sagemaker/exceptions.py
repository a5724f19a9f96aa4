"""The managed SDK's exception classes (``sagemaker.exceptions``), with boxtune's messages.

Code written for the SDK catches ``ValueError`` subclasses; these are also ``BoxtuneError``\\ s,
so the CLI and logs render them with the same where/hint lines as every other boxtune error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from boxtune.errors import BoxtuneError, HyperparameterError, ModelError


class UnexpectedStatusException(BoxtuneError, ValueError):
    """A job ended in a status the caller did not wait for (``Failed``, ``Stopped``)."""

    def __init__(
        self,
        message: str,
        allowed_statuses: Sequence[str],
        actual_status: str,
        *,
        where: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, where=where, hint=hint)
        self.allowed_statuses = list(allowed_statuses)
        self.actual_status = actual_status


class InvalidModelError(ModelError, ValueError):
    """An unknown model id or an unusable model reference (the SDK raises ``ValueError``)."""


@contextmanager
def sdk_errors() -> Iterator[None]:
    """Raise boxtune's model and hyperparameter errors as the SDK's ``ValueError`` classes,
    with the same message, location and hint."""
    from boxtune.sagemaker.jumpstart.exceptions import JumpStartHyperparametersError

    try:
        yield
    except HyperparameterError as exc:
        if isinstance(exc, ValueError):
            raise
        raise JumpStartHyperparametersError(exc.message, where=exc.where, hint=exc.hint) from exc
    except ModelError as exc:
        if isinstance(exc, ValueError):
            raise
        raise InvalidModelError(exc.message, where=exc.where, hint=exc.hint) from exc

"""``sagemaker.deserializers``: what ``Predictor.predict`` makes of the response body.

``deserialize(stream, content_type)`` reads the (file-like) body; ``ACCEPT`` is sent as the
request's Accept unless ``initial_args`` name one.
"""

from __future__ import annotations

import abc
import codecs
import io
import json
from collections.abc import Sequence
from typing import Any


class BaseDeserializer(abc.ABC):
    @abc.abstractmethod
    def deserialize(self, stream: Any, content_type: str) -> Any:
        """The value of a response body."""

    @property
    @abc.abstractmethod
    def ACCEPT(self) -> tuple[str, ...]:
        """The MIME types this deserializer reads."""


class SimpleBaseDeserializer(BaseDeserializer):
    def __init__(self, accept: str | Sequence[str] = "*/*"):
        self.accept = accept

    @property
    def ACCEPT(self) -> tuple[str, ...]:
        return (self.accept,) if isinstance(self.accept, str) else tuple(self.accept)


def _close_after(stream: Any, read) -> Any:
    try:
        return read()
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class BytesDeserializer(SimpleBaseDeserializer):
    """The body's bytes (the SDK's default: ``json.loads(predictor.predict(...))``)."""

    def __init__(self, accept: str | Sequence[str] = "*/*"):
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> bytes:
        return _close_after(stream, stream.read)


class StringDeserializer(SimpleBaseDeserializer):
    def __init__(self, encoding: str = "UTF-8", accept: str | Sequence[str] = "application/json"):
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: Any, content_type: str) -> str:
        return _close_after(stream, lambda: stream.read().decode(self.encoding))


class StreamDeserializer(SimpleBaseDeserializer):
    """``(stream, content_type)``: the caller reads and closes the stream."""

    def __init__(self, accept: str | Sequence[str] = "*/*"):
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> tuple[Any, str]:
        return stream, content_type


class JSONDeserializer(SimpleBaseDeserializer):
    """The parsed JSON answer (a dict: ``answer["normalized_boxes"]``)."""

    def __init__(self, accept: str | Sequence[str] = "application/json"):
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> Any:
        return _close_after(stream, lambda: json.load(codecs.getreader("utf-8")(stream)))


class NumpyDeserializer(SimpleBaseDeserializer):
    def __init__(
        self,
        dtype: Any = None,
        accept: str | Sequence[str] = "application/x-npy",
        allow_pickle: bool = False,
    ):
        super().__init__(accept)
        self.dtype = dtype
        self.allow_pickle = allow_pickle

    def deserialize(self, stream: Any, content_type: str) -> Any:
        import numpy as np

        def read():
            body = stream.read()
            if content_type.startswith("application/json"):
                return np.array(json.loads(body), dtype=self.dtype)
            if content_type.startswith("application/x-npy"):
                return np.load(io.BytesIO(body), allow_pickle=self.allow_pickle)
            raise ValueError(
                f"NumpyDeserializer cannot read a {content_type!r} answer: ask for "
                "application/json or application/x-npy"
            )

        return _close_after(stream, read)


__all__ = [
    "BaseDeserializer",
    "BytesDeserializer",
    "JSONDeserializer",
    "NumpyDeserializer",
    "SimpleBaseDeserializer",
    "StreamDeserializer",
    "StringDeserializer",
]

"""``sagemaker.serializers``: how ``Predictor.predict`` turns its ``data`` into a request body.

Each serializer has ``CONTENT_TYPE`` (the request's Content-Type unless ``initial_args`` name
one) and ``serialize(data) -> bytes``.
"""

from __future__ import annotations

import abc
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from boxtune.errors import BoxtuneError


class BaseSerializer(abc.ABC):
    @abc.abstractmethod
    def serialize(self, data: Any) -> Any:
        """The request body for ``data``."""

    @property
    @abc.abstractmethod
    def CONTENT_TYPE(self) -> str:
        """The MIME type of the bodies this serializer makes."""


class SimpleBaseSerializer(BaseSerializer):
    def __init__(self, content_type: str = "application/json"):
        if not isinstance(content_type, str):
            raise ValueError(
                f"content_type must be a string, not {type(content_type).__name__}: "
                'pass e.g. content_type="application/x-image"'
            )
        self.content_type = content_type

    @property
    def CONTENT_TYPE(self) -> str:
        return self.content_type


class IdentitySerializer(SimpleBaseSerializer):
    """Bytes as they are (the default: an image file's bytes)."""

    def __init__(self, content_type: str = "application/octet-stream"):
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        return data


class DataSerializer(SimpleBaseSerializer):
    """A file path (its bytes are read) or bytes."""

    def __init__(self, content_type: str = "file-path/raw-bytes"):
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        if isinstance(data, str | os.PathLike):
            path = Path(data).expanduser()
            if not path.is_file():
                raise BoxtuneError(
                    f"{path} is not a file",
                    where="DataSerializer.serialize",
                    hint="pass the path of an image file, or its bytes",
                )
            return path.read_bytes()
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
        raise ValueError(
            f"DataSerializer cannot serialize a {type(data).__name__}: pass a file path or bytes"
        )


class JSONSerializer(SimpleBaseSerializer):
    def __init__(self, content_type: str = "application/json"):
        super().__init__(content_type)

    def serialize(self, data: Any) -> str:
        if hasattr(data, "read"):
            return data.read()
        if hasattr(data, "tolist"):  # numpy arrays
            data = data.tolist()
        return json.dumps(data)


class CSVSerializer(SimpleBaseSerializer):
    def __init__(self, content_type: str = "text/csv"):
        super().__init__(content_type)

    def serialize(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        rows = data.tolist() if hasattr(data, "tolist") else data
        if rows and not isinstance(rows[0], list | tuple):
            rows = [rows]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().rstrip("\n")


class NumpySerializer(SimpleBaseSerializer):
    def __init__(self, dtype: Any = None, content_type: str = "application/x-npy"):
        super().__init__(content_type)
        self.dtype = dtype

    def serialize(self, data: Any) -> bytes:
        import numpy as np

        array = np.asarray(data, dtype=self.dtype)
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()


__all__ = [
    "BaseSerializer",
    "CSVSerializer",
    "DataSerializer",
    "IdentitySerializer",
    "JSONSerializer",
    "NumpySerializer",
    "SimpleBaseSerializer",
]

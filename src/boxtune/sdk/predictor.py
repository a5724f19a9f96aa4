"""``Predictor``: a client of a running endpoint, shaped like the managed SDK's.

>>> predictor = estimator.deploy()
>>> answer = predictor.predict(open("street.jpg", "rb").read(),
...                            {"ContentType": "application/x-image",
...                             "Accept": "application/json;verbose"})
>>> answer["normalized_boxes"], answer["labels"]     # parsed JSON...
>>> json.loads(answer)                               # ...that is also the raw bytes
>>> predictor.delete_endpoint()
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boxtune.errors import BoxtuneError
from boxtune.sdk.notices import ignore_platform_arguments

IMAGE_CONTENT_TYPE = "application/x-image"
DEFAULT_ACCEPT = "application/json"
DEFAULT_TIMEOUT_S = 120.0


class EndpointError(BoxtuneError):
    """The endpoint answered an error (``status``), or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None, where=None, hint=None):
        super().__init__(message, where=where, hint=hint)
        self.status = status


class JSONResponse(bytes):
    """An endpoint's JSON answer: the raw bytes (as the managed SDK returns them, so
    ``json.loads(response)`` works) that also reads like the parsed dict
    (``response["normalized_boxes"]``, ``.keys()``, ``.get()``, ``.json()``)."""

    def json(self) -> Any:
        cached = self.__dict__.get("_parsed")
        if cached is None:
            cached = json.loads(bytes(self))
            self.__dict__["_parsed"] = cached
        return cached

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return self.json()[key]
        return bytes.__getitem__(self, key)

    def __contains__(self, key) -> bool:  # type: ignore[override]
        if isinstance(key, str):
            return key in self.json()
        return bytes.__contains__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.json().get(key, default)

    def keys(self):
        return self.json().keys()

    def values(self):
        return self.json().values()

    def items(self):
        return self.json().items()

    def __str__(self) -> str:
        return bytes(self).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"JSONResponse({self.json()!r})"


def image_bytes(data: Any) -> bytes:
    """Bytes as they are; a path is read; a PIL image or an HxWx3 uint8 array becomes PNG."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str | os.PathLike):
        path = Path(data).expanduser()
        if not path.is_file():
            raise BoxtuneError(
                f"{path} is not a file",
                where="Predictor.predict",
                hint="pass the image's bytes, a path to an image file, a PIL image or an array",
            )
        return path.read_bytes()
    if hasattr(data, "read"):
        return data.read()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and not isinstance(data, Image.Image) and hasattr(data, "shape"):
        data = Image.fromarray(data)
    if Image is not None and isinstance(data, Image.Image):
        buffer = io.BytesIO()
        data.save(buffer, format="PNG")
        return buffer.getvalue()
    raise BoxtuneError(
        f"cannot send a {type(data).__name__}",
        where="Predictor.predict",
        hint="pass the image's bytes, a path to an image file, a PIL image or an array",
    )


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()[:2000]
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(data)[:2000]


class Predictor:
    """Sends requests to an endpoint started by ``deploy()`` (or any boxtune serve URL).

    ``endpoint_name``: a registered endpoint's name (``boxtune endpoints list``) or a base URL
    such as ``http://127.0.0.1:8080``.
    """

    def __init__(
        self,
        endpoint_name: str,
        sagemaker_session: Any = None,
        serializer: Any = None,
        deserializer: Any = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        **platform: Any,
    ):
        ignore_platform_arguments("Predictor", {"sagemaker_session": sagemaker_session, **platform})
        self.endpoint_name = endpoint_name
        self.serializer = serializer
        self.deserializer = deserializer
        self.timeout = timeout
        self._url: str | None = None

    @property
    def endpoint(self) -> str:  # the managed SDK's older name
        return self.endpoint_name

    @property
    def url(self) -> str:
        if self._url is None:
            if self.endpoint_name.startswith(("http://", "https://")):
                self._url = self.endpoint_name.rstrip("/")
            else:
                from boxtune.jobs import get_endpoint

                record = get_endpoint(self.endpoint_name)
                if record.status != "running":
                    raise BoxtuneError(
                        f"endpoint {self.endpoint_name!r} is {record.status}"
                        + (f": {record.failure_reason}" if record.failure_reason else ""),
                        hint="deploy the model again (estimator.deploy() / Model(...).deploy())",
                    )
                return record.url  # not cached: a registered endpoint may be stopped later
        return self._url

    def ping(self) -> bool:
        from boxtune.jobs import ping

        return ping(self.url)

    def predict(
        self,
        data: Any,
        initial_args: Mapping[str, str] | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        *,
        accept: str | None = None,
        content_type: str | None = None,
        **platform: Any,
    ) -> Any:
        """POST ``data`` to ``/invocations``; returns the parsed JSON answer (a JSONResponse).

        ``initial_args`` takes the managed SDK's ``{"ContentType": ..., "Accept": ...}``;
        ``accept`` may carry ``;verbose`` and ``;n_predictions=N``.
        """
        ignore_platform_arguments(
            "Predictor.predict",
            {
                "target_model": target_model,
                "target_variant": target_variant,
                "inference_id": inference_id,
                **platform,
            },
        )
        args = dict(initial_args or {})
        accept = args.pop("Accept", None) or accept or DEFAULT_ACCEPT
        content_type = args.pop("ContentType", None) or content_type or IMAGE_CONTENT_TYPE
        if self.serializer is not None and not isinstance(data, bytes | bytearray):
            data = self.serializer.serialize(data)
        payload, answer_type = self.invoke(image_bytes(data), content_type, accept)
        if self.deserializer is not None:
            return self.deserializer.deserialize(io.BytesIO(payload), answer_type)
        if "json" in answer_type:
            return JSONResponse(payload)
        return payload

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """POST ``body`` to ``/invocations``: the answer's bytes and Content-Type. An error
        answer raises :class:`EndpointError` with its status and message."""
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": content_type, "Accept": accept},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise EndpointError(
                f"endpoint {self.endpoint_name!r} answered {exc.code}: "
                f"{_error_message(exc.read())}",
                status=exc.code,
                where=f"{self.url}/invocations",
                hint="check the request's ContentType/Accept and the image",
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(
                f"cannot reach endpoint {self.endpoint_name!r} at {self.url}: {exc}",
                status=None,
                hint="is it running? `boxtune endpoints list`",
            ) from exc

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Stop the endpoint's server (a URL endpoint is not ours to stop)."""
        if self.endpoint_name.startswith(("http://", "https://")):
            return
        from boxtune.jobs import stop_endpoint

        stop_endpoint(self.endpoint_name)

    def delete_model(self) -> None:
        """Nothing to delete: the model stays where it was (its artifact)."""

    def __repr__(self) -> str:
        return f"Predictor(endpoint_name={self.endpoint_name!r})"

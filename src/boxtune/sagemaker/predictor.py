"""``sagemaker.predictor.Predictor``: the SDK's client of an endpoint, for boxtune endpoints.

As in the SDK, ``predict`` returns whatever the deserializer makes of the body: the default
``BytesDeserializer`` gives ``bytes`` (the notebook's ``json.loads(response)``), a
``JSONDeserializer`` a dict. An error answer raises botocore's ``ClientError`` with the code
``ModelError``, the exception the SDK raises, carrying boxtune's message.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.deserializers import BaseDeserializer, BytesDeserializer
from boxtune.sagemaker.serializers import BaseSerializer, IdentitySerializer
from boxtune.sdk.notices import ignore_platform_arguments
from boxtune.sdk.predictor import EndpointError, image_bytes
from boxtune.sdk.predictor import Predictor as _LocalPredictor

_DEFAULT_SERIALIZER = IdentitySerializer()
_DEFAULT_DESERIALIZER = BytesDeserializer()


def model_error(error: EndpointError) -> Exception:
    """botocore's ``ClientError`` for InvokeEndpoint, as the SDK raises it."""
    from botocore.exceptions import ClientError

    status = error.status
    said = (
        f'Received client error ({status}) from primary with message "{error.message}"'
        if status is not None
        else error.message
    )
    return ClientError(
        {
            "Error": {"Code": "ModelError", "Message": said},
            "ResponseMetadata": {"HTTPStatusCode": 424 if status else 0},
            "OriginalStatusCode": status,
        },
        "InvokeEndpoint",
    )


class Predictor(_LocalPredictor):
    def __init__(
        self,
        endpoint_name: str,
        sagemaker_session: Any = None,
        serializer: BaseSerializer = _DEFAULT_SERIALIZER,
        deserializer: BaseDeserializer = _DEFAULT_DESERIALIZER,
        component_name: str | None = None,
        **kwargs: Any,
    ):
        timeout = kwargs.pop("timeout", None)
        super().__init__(
            endpoint_name,
            sagemaker_session=sagemaker_session,
            component_name=component_name,
            **kwargs,
        )
        if timeout is not None:
            self.timeout = timeout
        self.serializer = serializer
        self.deserializer = deserializer

    @property
    def content_type(self) -> str:
        return self.serializer.CONTENT_TYPE

    @property
    def accept(self) -> tuple[str, ...]:
        return self.deserializer.ACCEPT

    def predict(
        self,
        data: Any,
        initial_args: Mapping[str, str] | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        component_name: str | None = None,
    ) -> Any:
        ignore_platform_arguments(
            "Predictor.predict",
            {
                "target_model": target_model,
                "target_variant": target_variant,
                "inference_id": inference_id,
                "custom_attributes": custom_attributes,
                "component_name": component_name,
            },
        )
        args = dict(initial_args or {})
        content_type = args.pop("ContentType", None) or self.content_type
        accept = args.pop("Accept", None) or ", ".join(self.accept)
        body = self.serializer.serialize(data)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            payload, answer_type = self.invoke(image_bytes(body), content_type, accept)
        except EndpointError as exc:
            raise model_error(exc) from exc
        return self.deserializer.deserialize(io.BytesIO(payload), answer_type)

"""The serializers a JumpStart predictor gets for an object-detection model: image bytes in,
the parsed verbose JSON answer out."""

from __future__ import annotations

from boxtune.sagemaker.deserializers import JSONDeserializer
from boxtune.sagemaker.serializers import IdentitySerializer

DETECTION_CONTENT_TYPE = "application/x-image"
DETECTION_ACCEPT = "application/json;verbose"


def detection_serializer() -> IdentitySerializer:
    return IdentitySerializer(DETECTION_CONTENT_TYPE)


def detection_deserializer() -> JSONDeserializer:
    return JSONDeserializer(DETECTION_ACCEPT)

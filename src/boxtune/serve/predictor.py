"""The in-process predictor: the same answers as the HTTP endpoint, without HTTP.

>>> predictor = InProcessPredictor.load("out/model")  # or model.tar.gz, s3://..., a model_id
>>> body, content_type = predictor.predict_bytes(open("cat.jpg", "rb").read(),
...                                              "application/json;verbose")

Not to be confused with ``boxtune.sdk.Predictor``, the managed SDK's HTTP client of a running
endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from boxtune.data.images import pixel_limit
from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.labels import LabelMap
from boxtune.model_ref import open_runner
from boxtune.serve.codec import DecodedImage, ImageHeader, decode_image, probe_image, working_side
from boxtune.serve.contract import (
    JSON_CONTENT_TYPE,
    ResponseFormat,
    build_response,
    parse_accept,
)

DEFAULT_MAX_DETECTIONS = 100


@dataclass
class InProcessPredictor:
    """A Runner plus the contract: decoding, score threshold, detection cap, JSON answer.

    ``max_image_pixels`` defaults to the shared pixel limit (``boxtune.data.images``,
    ``$BOXTUNE_MAX_IMAGE_PIXELS``) at the time the predictor is made.
    """

    runner: Runner
    description: str = "custom runner"
    score_threshold: float | None = None
    max_detections: int = DEFAULT_MAX_DETECTIONS
    max_image_pixels: int = field(default_factory=pixel_limit)

    @classmethod
    def load(
        cls,
        model_ref: str,
        backend: str | None = None,
        score_threshold: float | None = None,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
        max_image_pixels: int | None = None,
    ) -> InProcessPredictor:
        """model_ref: artifact dir, model.tar.gz, s3:// URI, deployable model_id, or
        ``py:module:function`` returning a Runner. ``backend``: one of the engine's inference
        backends, None for the engine's default. ``max_image_pixels``: None for the shared
        pixel limit."""
        opened = open_runner(model_ref, backend)
        runner, description = opened.runner, opened.description
        if max_image_pixels is None:
            max_image_pixels = pixel_limit()
        return cls(runner, description, score_threshold, max_detections, max_image_pixels)

    @property
    def label_map(self) -> LabelMap:
        return self.runner.label_map

    @property
    def labels(self) -> list[str]:
        return list(self.runner.label_map.names)

    @property
    def working_side(self) -> int:
        """Decoded images are scaled down to at most this a side (see boxtune.serve.codec)."""
        return working_side(self.runner.image_size)

    def probe(self, body: bytes, source: str = "request body") -> ImageHeader:
        """The header of ``body`` and the size :meth:`decode` will decode it at."""
        return probe_image(
            body, max_pixels=self.max_image_pixels, max_side=self.working_side, source=source
        )

    def decode(self, body: bytes, source: str = "request body") -> DecodedImage:
        return decode_image(
            body, max_pixels=self.max_image_pixels, source=source, max_side=self.working_side
        )

    def predict_arrays(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections (pixels of each image, best first, at most max_detections) per image."""
        if not images:
            return []
        results = self.runner.predict(list(images))
        return [d.sorted().top(self.max_detections) for d in results]

    def respond(
        self, detections: Detections, image: DecodedImage, response_format: ResponseFormat
    ) -> dict:
        """The answer for ``detections`` in the pixels of ``image.pixels``."""
        return build_response(
            image.to_original(detections),  # in the stored image's pixels
            width=image.width,
            height=image.height,
            label_map=self.label_map,
            response_format=response_format,
            score_threshold=self.score_threshold,
            model_output_name=self.runner.model_output_name,
        )

    def predict_image(self, image: DecodedImage, accept: str | None = None) -> dict:
        response_format = parse_accept(accept)
        return self.respond(self.predict_arrays([image.pixels])[0], image, response_format)

    def predict_bytes(self, body: bytes, accept: str | None = None) -> tuple[dict, str]:
        """The endpoint's answer for one encoded image and Accept header, and its content type.

        Raises ImageDecodeError / ImageTooLargeError / UnsupportedAcceptError /
        BadAcceptParameterError (all BoxtuneError) for bad input.
        """
        response_format = parse_accept(accept)
        image = self.decode(body)
        detections = self.predict_arrays([image.pixels])[0]
        return self.respond(detections, image, response_format), JSON_CONTENT_TYPE

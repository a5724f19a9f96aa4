"""``Model``: deploy a model without training, shaped like the managed SDK's.

``Model(model_id=...)`` serves a deployable pretrained catalog model (COCO classes);
``Model(model_data=...)`` serves a boxtune artifact (dir, model.tar.gz, s3://) or what
``model_uris.retrieve(model_scope="inference")`` returned.
"""

from __future__ import annotations

import logging
from typing import Any

from boxtune.errors import ModelError
from boxtune.sdk.notices import ignore_platform_arguments
from boxtune.sdk.predictor import Predictor


class Model:
    def __init__(
        self,
        model_data: str | None = None,
        model_id: str | None = None,
        image_uri: str | None = None,
        role: str | None = None,
        entry_point: str | None = None,
        source_dir: str | None = None,
        predictor_cls: Any = None,
        name: str | None = None,
        *,
        model_version: str = "*",
        sagemaker_session: Any = None,
        **platform: Any,
    ):
        from boxtune.sdk.uris import model_id_from_uri

        ignore_platform_arguments(
            "Model",
            {
                "image_uri": image_uri,
                "role": role,
                "entry_point": entry_point,
                "source_dir": source_dir,
                "sagemaker_session": sagemaker_session,
                **platform,
            },
        )
        pretrained = model_id_from_uri(model_data) if model_data else None
        if model_data and not pretrained:
            self.model_ref = str(model_data)
            self.model_id = model_id
        else:
            model_id = model_id or pretrained or model_id_from_uri(image_uri)
            if not model_id:
                raise ModelError(
                    "no model given",
                    where="Model",
                    hint="pass model_id=<a deployable catalog id> (`boxtune models list`) or "
                    "model_data=<a boxtune model.tar.gz, directory or s3:// URI>",
                )
            _check_deployable(model_id)
            self.model_ref = model_id
            self.model_id = model_id
        self.model_data = model_data
        self.model_version = model_version
        self.name = name
        self.predictor_cls = predictor_cls
        self.predictor: Predictor | None = None

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        endpoint_name: str | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        backend: str | None = None,
        wait: bool = True,
        **platform: Any,
    ) -> Predictor:
        """Start ``boxtune serve`` for this model in the background; returns its Predictor."""
        endpoint = start_background_endpoint(
            self.model_ref,
            caller="Model.deploy",
            model_id=self.model_id,
            name=endpoint_name or self.name,
            port=port,
            host=host,
            backend=backend,
            wait=wait,
            platform={
                "instance_type": instance_type,
                "initial_instance_count": None if initial_instance_count == 1 else 1,
                **platform,
            },
        )
        predictor_cls = self.predictor_cls if _is_our_predictor(self.predictor_cls) else Predictor
        self.predictor = predictor_cls(
            endpoint.name, serializer=serializer, deserializer=deserializer
        )
        return self.predictor

    def delete_model(self) -> None:
        """Nothing to delete locally (the artifact stays where it is)."""


def start_background_endpoint(
    model_ref: str,
    *,
    caller: str,
    model_id: str | None,
    name: str | None,
    port: int | None,
    host: str,
    backend: str | None,
    wait: bool,
    platform: dict[str, Any],
    job_name: str | None = None,
):
    """What every ``deploy()`` does: note ignored platform arguments, start ``boxtune serve`` as a
    registered endpoint (waiting for ``/ping`` when ``wait``) and say where it listens."""
    from boxtune.jobs import start_endpoint

    ignore_platform_arguments(caller, platform)
    endpoint = start_endpoint(
        model_ref,
        name=name,
        port=port,
        host=host,
        backend=backend,
        model_id=model_id,
        job_name=job_name,
        wait=wait,
    )
    logging.getLogger(__name__).info(
        "endpoint %s serving %s at %s", endpoint.name, model_ref, endpoint.url
    )
    return endpoint


def _is_our_predictor(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, Predictor)


def _check_deployable(model_id: str) -> None:
    from boxtune.model_ref import deployable_spec

    deployable_spec(
        model_id,
        where="Model(model_id=...)",
        hint=f'fine-tune it first: Estimator(model_id="{model_id}").fit(...).deploy(), or '
        "pick a deployable model (`boxtune models list`)",
    )

"""``Estimator``: fine-tune a catalog model as a background job, shaped like the managed SDK's.

>>> from boxtune import Estimator, hyperparameters
>>> hp = hyperparameters.retrieve_default(model_id=MODEL_ID, model_version="*")
>>> hp["epochs"] = "5"
>>> estimator = Estimator(model_id=MODEL_ID, hyperparameters=hp, output_path="s3://bucket/out")
>>> estimator.fit({"training": "s3://bucket/data/train"}, logs=True)
>>> estimator.model_data        # s3://bucket/out/<job_name>/output/model.tar.gz
>>> predictor = estimator.deploy()
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boxtune import storage
from boxtune.errors import BoxtuneError, ModelError, TrainingError
from boxtune.sdk.notices import ignore_platform_arguments
from boxtune.sdk.predictor import Predictor

_log = logging.getLogger(__name__)

CHANNELS = ("training", "validation", "model")


def default_output_path() -> str:
    from boxtune.paths import boxtune_home

    return str(boxtune_home() / "output")


def channel_uri(value: Any, channel: str) -> str:
    """A channel's location from a string/path, or the managed SDK's ``TrainingInput``."""
    if isinstance(value, str | Path):
        return str(value)
    for attribute in ("s3_data", "uri", "location"):
        if isinstance(getattr(value, attribute, None), str):
            return getattr(value, attribute)
    config = getattr(value, "config", None)
    try:
        return config["DataSource"]["S3DataSource"]["S3Uri"]
    except (TypeError, KeyError):
        pass
    raise BoxtuneError(
        f"cannot read the location of channel {channel!r} from a {type(value).__name__}",
        where="Estimator.fit(inputs)",
        hint='pass a local path or URI, e.g. {"training": "s3://bucket/prefix/"}',
    )


def normalize_inputs(inputs: Any) -> dict[str, str]:
    if inputs is None:
        raise BoxtuneError(
            "no training data given",
            where="Estimator.fit",
            hint='call fit({"training": "path/or/s3://uri"}) (a dataset with images/ and '
            "annotations.json; `boxtune data sample DIR` makes one)",
        )
    if not isinstance(inputs, Mapping):
        inputs = {"training": inputs}
    channels = {str(k): channel_uri(v, str(k)) for k, v in inputs.items()}
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown or "training" not in channels:
        raise BoxtuneError(
            f"unsupported channels {unknown}" if unknown else "the 'training' channel is missing",
            where="Estimator.fit(inputs)",
            hint="channels: training (required), validation (optional), model (a previous "
            "boxtune model.tar.gz, for incremental training)",
        )
    for channel, uri in channels.items():
        if not storage.exists(uri):
            raise BoxtuneError(
                f"the {channel} channel's location {uri} does not exist",
                where="Estimator.fit(inputs)",
                hint="check the path or URI (and BOXTUNE_S3_ENDPOINT_URL / AWS credentials "
                "for s3://)",
            )
    return channels


def _checked_metric_definitions(definitions: Any) -> list[dict[str, str]]:
    from boxtune.sdk.metrics import compile_definitions

    checked = [dict(d) for d in definitions or []]
    compile_definitions(checked, where="Estimator(metric_definitions=...)")
    return checked


class TrainingJob:
    """The managed SDK's ``estimator.latest_training_job``: a handle on a registered job."""

    def __init__(self, name: str):
        self.name = name
        self.job_name = name

    def describe(self) -> dict[str, Any]:
        from boxtune.jobs import get_job

        return get_job(self.name).to_json()

    @property
    def status(self) -> str:
        from boxtune.jobs import get_job

        return get_job(self.name, with_metrics=False).status

    def wait(self, logs: Any = True) -> None:
        _wait(self.name, logs)

    def stop(self) -> None:
        from boxtune.jobs import stop_job

        stop_job(self.name)

    def __repr__(self) -> str:
        return f"TrainingJob({self.name!r})"


def _wants_logs(logs: Any) -> bool:
    if isinstance(logs, str):
        return logs.lower() not in ("none", "false", "")
    return bool(logs)


def _wait(name: str, logs: Any) -> None:
    from boxtune.jobs import stream_logs, wait_for_job

    try:
        if _wants_logs(logs):
            job = stream_logs(name, sys.stdout, follow=True)
        else:
            job = wait_for_job(name)
    except KeyboardInterrupt:
        _log.info(
            f"stopped waiting; training job {name} keeps running in the background "
            f"(`boxtune jobs logs {name} --follow`, `boxtune jobs stop {name}`)"
        )
        raise
    if job.status != "completed":
        reason = job.failure_reason or job.status
        raise TrainingError(
            f"training job {name} {job.status}: {reason}",
            hint=f"full log: {job.log_path} (`boxtune jobs logs {name}`)",
        )


class Estimator:
    """Fine-tunes ``model_id`` (or continues from a previous artifact) as a background job.

    ``hyperparameters``: name -> value (strings like the managed platform, or natives) over
    the model's defaults. ``output_path``: local directory or ``s3://`` prefix; the model lands
    in ``<output_path>/<job_name>/output/model.tar.gz``. ``model_uri``: what
    ``model_uris.retrieve`` returned (the pretrained model), a copy of the model's weights
    file under the same name (a zoo tarball in your bucket: the pretrained weights are read
    from there), or a previous boxtune ``model.tar.gz`` to train incrementally.
    Managed-platform arguments (role, instance_type, image_uri, source_dir, entry_point, ...)
    are accepted and ignored.
    """

    def __init__(
        self,
        model_id: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        output_path: str | None = None,
        instance_count: int = 1,
        instance_type: str | None = None,
        *,
        model_version: str = "*",
        model_uri: str | None = None,
        base_job_name: str | None = None,
        role: str | None = None,
        image_uri: str | None = None,
        source_dir: str | None = None,
        entry_point: str | None = None,
        sagemaker_session: Any = None,
        max_run: int | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        **platform: Any,
    ):
        from boxtune.sdk.uris import model_id_from_uri, model_id_of_weights_file

        ignore_platform_arguments(
            "Estimator",
            {
                "role": role,
                "instance_type": instance_type,
                "image_uri": image_uri,
                "source_dir": source_dir,
                "entry_point": entry_point,
                "sagemaker_session": sagemaker_session,
                "max_run": max_run,
                "instance_count": instance_count if instance_count != 1 else None,
                **platform,
            },
        )
        inferred = (
            model_id_from_uri(model_uri)
            or model_id_from_uri(image_uri)
            or model_id_from_uri(source_dir)
        )
        self.model_id = model_id or inferred
        # A model_uri that is not a catalog model's weights (where boxtune keeps them, or a
        # copy of the weights file) is a previous boxtune artifact.
        self.weights: str | None = None
        self.base_model: str | None = None
        if model_uri and not model_id_from_uri(model_uri):
            weights_of = model_id_of_weights_file(model_uri, self.model_id)
            if weights_of:
                self.model_id, self.weights = weights_of, str(model_uri)
            else:
                self.base_model = str(model_uri)
        if not self.model_id and not self.base_model:
            from boxtune.catalog import DEFAULT_MODEL_ID

            raise ModelError(
                "no model given",
                where="Estimator",
                hint=f'pass model_id="{DEFAULT_MODEL_ID}" (`boxtune models list` shows all), '
                "or model_uri=<a previous model.tar.gz> for incremental training",
            )
        if self.model_id:
            from boxtune.catalog import get_spec

            get_spec(self.model_id)  # an unknown id fails here, with close matches
        self.model_version = model_version
        self.hyperparameters_dict = {k: str(v) for k, v in (hyperparameters or {}).items()}
        self.output_path = output_path or default_output_path()
        self.base_job_name = base_job_name
        self.instance_count = 1
        # Regexes over the job's log (``TrainingJobAnalytics``, tuning objectives).
        self.metric_definitions = _checked_metric_definitions(metric_definitions)
        self.latest_training_job: TrainingJob | None = None

    # -- the managed SDK's accessors --------------------------------------------------------------
    def hyperparameters(self) -> dict[str, str]:
        return dict(self.hyperparameters_dict)

    def set_hyperparameters(self, **values: Any) -> None:
        self.hyperparameters_dict.update({k: str(v) for k, v in values.items()})

    @property
    def _current_job_name(self) -> str | None:
        return self.latest_training_job.name if self.latest_training_job else None

    def _job(self):
        from boxtune.jobs import get_job

        if self.latest_training_job is None:
            raise BoxtuneError(
                "this estimator has not been fitted",
                where="Estimator",
                hint="call fit(...) first, or Estimator.attach(job_name) for an existing job",
            )
        return get_job(self.latest_training_job.name)

    @property
    def model_data(self) -> str:
        """``<output_path>/<job_name>/output/model.tar.gz`` of the finished job."""
        job = self._job()
        if job.status != "completed":
            raise BoxtuneError(
                f"training job {job.name} is {job.status}; model_data exists once it completes"
                + (f" ({job.failure_reason.splitlines()[0]})" if job.failure_reason else ""),
                hint=f"`boxtune jobs show {job.name}`",
            )
        return str(job.model_data)

    def describe(self) -> dict[str, Any]:
        return self._job().to_json()

    # -- training ---------------------------------------------------------------------------------
    def fit(
        self,
        inputs: Any = None,
        wait: bool = True,
        logs: Any = "All",
        job_name: str | None = None,
        experiment_config: Any = None,
        **platform: Any,
    ) -> None:
        """Start training on ``inputs`` (``{"training": uri, "validation": uri}``) as a job.

        ``wait``: block until it ends (a failure raises ``TrainingError`` with the reason);
        ``logs``: stream its log meanwhile. The job keeps running if you interrupt the wait.
        """
        from boxtune.jobs import submit_training_job
        from boxtune.train.hyperparameters import parse_hyperparameters

        ignore_platform_arguments(
            "Estimator.fit", {"experiment_config": experiment_config, **platform}
        )
        channels = normalize_inputs(inputs)
        storage.check_destination(self.output_path)
        base_model = channels.get("model") or self.base_model
        # Bad names and values fail here, in the caller's process, not minutes later in a job.
        parse_hyperparameters(self.model_id, self.hyperparameters_dict, self.model_version)
        job = submit_training_job(
            training=channels["training"],
            validation=channels.get("validation"),
            model_id=self.model_id,
            base_model=base_model,
            weights=None if base_model else self.weights,
            hyperparameters=self.hyperparameters_dict,
            output_path=self.output_path,
            name=job_name,
            base_name=self.base_job_name or self.model_id or "boxtune-incremental",
            metric_definitions=self.metric_definitions,
        )
        self.latest_training_job = TrainingJob(job.name)
        _log.info(
            "training job %s submitted (log: %s); the model will be at %s",
            job.name,
            job.log_path,
            job.model_data,
        )
        if wait:
            _wait(job.name, logs)

    def logs(self) -> None:
        """Print the latest job's log, following it while it runs."""
        from boxtune.jobs import stream_logs

        stream_logs(self._job().name, sys.stdout, follow=True)

    @classmethod
    def attach(
        cls, training_job_name: str, sagemaker_session: Any = None, wait: bool = True
    ) -> Estimator:
        """An Estimator for an existing job (waits for it to end, as the managed SDK does)."""
        from boxtune.jobs import get_job, read_metric_definitions

        ignore_platform_arguments("Estimator.attach", {"sagemaker_session": sagemaker_session})
        job = get_job(training_job_name)
        estimator = cls.__new__(cls)
        estimator.model_id = job.model_id
        estimator.base_model = job.base_model
        estimator.weights = job.inputs.get("weights")
        estimator.model_version = "*"
        estimator.hyperparameters_dict = dict(job.hyperparameters)
        estimator.output_path = job.output_path or default_output_path()
        estimator.base_job_name = None
        estimator.instance_count = 1
        estimator.metric_definitions = read_metric_definitions(job)
        estimator.latest_training_job = TrainingJob(job.name)
        if wait and job.is_active:
            _wait(job.name, logs=False)
        return estimator

    # -- deployment -------------------------------------------------------------------------------
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
        """Serve the fine-tuned model (``boxtune serve`` in the background); returns its
        ``Predictor`` once ``/ping`` answers. ``port``: default a free one."""
        from boxtune.sdk.model import start_background_endpoint

        endpoint = start_background_endpoint(
            self.model_data,
            caller="Estimator.deploy",
            model_id=self.model_id,
            name=endpoint_name,
            port=port,
            host=host,
            backend=backend,
            wait=wait,
            job_name=self.latest_training_job.name if self.latest_training_job else None,
            platform={
                "instance_type": instance_type,
                "initial_instance_count": None if initial_instance_count == 1 else 1,
                **platform,
            },
        )
        return Predictor(endpoint.name, serializer=serializer, deserializer=deserializer)

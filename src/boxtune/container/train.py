"""``docker run IMAGE train``: the platform's training job, run by :func:`boxtune.train.train`.

The job reads its configuration and channels under ``/opt/ml/input``, trains in a work folder
(``/opt/ml/checkpoints`` when the job has a checkpoint location, so a restarted spot job
continues; a temp folder otherwise), then copies the artifact's files into ``/opt/ml/model``
and its metrics into ``/opt/ml/output/data``. Any failure is written to
``/opt/ml/output/failure`` (boxtune's own message: what, where, how to fix) and ends the job
with a non-zero status; SIGTERM ends it with 143 after the trainer saved its checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from boxtune.console import TRAINING_LOG
from boxtune.container.channels import Channels, find_channels
from boxtune.container.job_config import (
    MODEL_ID_KEY,
    JobHyperparameters,
    check_single_host,
    read_hyperparameters,
    read_input_data_config,
)
from boxtune.container.layout import MLLayout
from boxtune.container.publish import (
    clear_failure,
    copy_outputs,
    publish_artifact,
    write_failure,
)
from boxtune.container.stopping import StopOnSigterm
from boxtune.errors import (
    BoxtuneError,
    HyperparameterError,
    ModelError,
    TrainingError,
    first_line,
    os_error,
)

MODEL_ID_ENV = "BOXTUNE_MODEL_ID"
STOPPED_EXIT = 128 + signal.SIGTERM
INTERRUPTED_EXIT = 128 + signal.SIGINT

_log = logging.getLogger(TRAINING_LOG).info


def run_training_job(layout: MLLayout) -> int:
    """Run the training job of ``layout``; returns the exit status (0: the model is in
    ``layout.model_dir``). A BoxtuneError propagates after it was written to the failure file."""
    clear_failure(layout.failure_file)
    with StopOnSigterm() as stop:
        try:
            _train(layout, stop)
        except KeyboardInterrupt:
            how = "stopped by SIGTERM (the job was stopped)" if stop.received else "interrupted"
            _record_failure(layout, f"training {how} before it finished; no model was written")
            _log(f"training {how}; no model was written")
            return STOPPED_EXIT if stop.received else INTERRUPTED_EXIT
        except BoxtuneError as exc:
            _record_failure(layout, str(exc))
            raise
        except OSError as exc:  # the disk, permissions: the same text the CLI would print
            error = os_error(exc, action="the training job")
            _record_failure(layout, str(error))
            raise error from exc
        except Exception as exc:
            _record_failure(
                layout,
                f"internal error: {type(exc).__name__}: {first_line(exc)}\n"
                "hint: the job's log holds the traceback; please report it to boxtune",
            )
            raise
    return 0


def _record_failure(layout: MLLayout, reason: str) -> None:
    try:
        write_failure(layout.failure_file, reason)
    except OSError as exc:  # the reason still reaches the log, and the exit status stays
        print(f"boxtune: cannot write {layout.failure_file}: {exc}", file=sys.stderr)


def _train(layout: MLLayout, stop: StopOnSigterm) -> None:
    from boxtune.artifacts import METRICS_FILE
    from boxtune.train import train
    from boxtune.train.loop import METRICS_LOG

    check_single_host(layout.resource_config_file)
    hp = read_hyperparameters(layout.hyperparameters_file)
    if hp.ignored:
        _log(
            f"note: ignoring the platform's hyperparameters {', '.join(hp.ignored)} "
            "(they configure the platform's own containers, not boxtune)"
        )
    channels = find_channels(layout, read_input_data_config(layout.input_data_config_file))
    for name in channels.ignored:
        _log(f"note: ignoring channel {name!r} (boxtune reads training, validation and model)")
    start = _starting_model(layout, hp, channels)
    work = _WorkDir.choose(layout)
    try:
        try:
            with _errors_named_for_the_job(layout, start, work):
                result = train(
                    start.model_id,
                    training=str(channels.training),
                    validation=str(channels.validation) if channels.validation else None,
                    output=str(work.path),
                    hyperparameters=hp.values,
                    artifact=str(start.artifact) if start.artifact else None,
                    resume=work.resume,
                    progress=sys.stderr.isatty(),  # no progress bar in the platform's log
                )
        except KeyboardInterrupt:
            _log(work.after_stop())
            raise
        with stop.deferred():  # milliseconds, and the job's clean end
            publish_artifact(result.artifact_dir, layout.model_dir)
        outputs = copy_outputs(
            [work.path / METRICS_LOG, result.artifact_dir / METRICS_FILE], layout.output_data_dir
        )
    finally:
        work.clean_up()
    names = ", ".join(p.name for p in outputs)
    _log(
        f"model files written to {layout.model_dir}"
        + (f"; {names} to {layout.output_data_dir}" if names else "")
    )


@dataclass(frozen=True)
class _StartingModel:
    model_id: str | None
    artifact: Path | None
    source: str  # where the model choice came from, for messages


def _starting_model(layout: MLLayout, hp: JobHyperparameters, channels: Channels) -> _StartingModel:
    """The model channel's artifact (incremental training), else the ``model_id``
    hyperparameter, else ``$BOXTUNE_MODEL_ID``, else the catalog's default model."""
    hp_source = f"{layout.hyperparameters_file} ({MODEL_ID_KEY})"
    if channels.model is not None:
        if hp.model_id is not None:
            _check_same_model(hp.model_id, channels.model, hp_source)
        _log(f"model: continuing the boxtune artifact of the model channel, {channels.model}")
        return _StartingModel(None, channels.model, str(channels.model))
    if hp.model_id is not None:
        model_id, source = hp.model_id, hp_source
    elif os.environ.get(MODEL_ID_ENV, "").strip():
        model_id, source = os.environ[MODEL_ID_ENV].strip(), f"${MODEL_ID_ENV}"
    else:
        from boxtune.catalog import DEFAULT_MODEL_ID

        model_id, source = DEFAULT_MODEL_ID, "the default model"
    _log(f"model: fine-tuning {model_id} (from {source})")
    return _StartingModel(model_id, None, source)


def _check_same_model(model_id: str, artifact: Path, source: str) -> None:
    from boxtune.artifacts import load_artifact

    continued = load_artifact(artifact).model_id
    if continued != model_id:
        raise HyperparameterError(
            f"{MODEL_ID_KEY}={model_id} differs from the model of the model channel's "
            f"artifact, {continued}",
            where=source,
            hint=f"incremental training continues the artifact's model: drop {MODEL_ID_KEY}, "
            "or leave the model channel out to fine-tune the catalog model",
        )


@dataclass(frozen=True)
class _WorkDir:
    """Where :func:`boxtune.train.train` writes its checkpoints and artifact."""

    path: Path
    resume: bool
    temporary: bool

    @classmethod
    def choose(cls, layout: MLLayout) -> _WorkDir:
        from boxtune.artifacts import MANIFEST_FILE
        from boxtune.train.checkpoints import CHECKPOINT_DIR, find_checkpoint

        path = layout.checkpoints_dir
        if not path.is_dir():
            return cls(Path(tempfile.mkdtemp(prefix="boxtune-job-")), False, True)
        resume = (
            find_checkpoint(path / CHECKPOINT_DIR, "last") is not None
            or (path / MANIFEST_FILE).is_file()
        )
        if resume:
            _log(f"checkpoints: continuing the run saved in {path} (the job was restarted)")
        else:
            _log(f"checkpoints: saving them in {path}; a restarted job continues from there")
        return cls(path, resume, False)

    def after_stop(self) -> str:
        """What happens to the checkpoint the trainer saved when it was stopped."""
        if self.temporary:
            return (
                "the job has no checkpoint location, so its checkpoint goes with the container; "
                "with one (checkpoint_s3_uri) a restarted job continues where it stopped"
            )
        return f"the checkpoint stays in {self.path}: a restarted job continues from it"

    def clean_up(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def _errors_named_for_the_job(
    layout: MLLayout, start: _StartingModel, work: _WorkDir
) -> Iterator[None]:
    """The trainer's errors name CLI arguments (``--hp``, ``model_id``, ``--output``); here
    they name the job's file, variable or checkpoint location instead."""
    try:
        yield
    except HyperparameterError as exc:
        hp_file = str(layout.hyperparameters_file)
        if exc.where and exc.where.startswith(hp_file):
            raise
        where = hp_file if exc.where in (None, "hyperparameters") else f"{hp_file} ({exc.where})"
        raise HyperparameterError(exc.message, where=where, hint=exc.hint) from exc
    except ModelError as exc:
        if exc.where != MODEL_ID_KEY:
            raise
        raise ModelError(exc.message, where=start.source, hint=exc.hint) from exc
    except TrainingError as exc:
        # Resuming from checkpoints of another model or class set (see boxtune.train.loop)
        if not (work.resume and exc.message.startswith("the checkpoint")):
            raise
        raise TrainingError(
            exc.message,
            where=exc.where,
            hint=f"{work.path} holds another run's checkpoints: give this job a checkpoint "
            "location of its own (checkpoint_s3_uri), or empty that location",
        ) from exc

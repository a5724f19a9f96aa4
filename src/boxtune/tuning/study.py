"""The Optuna side of a tuning job: its storage, sampler and pruner, and the study's records.

A tuning job is one Optuna study of the same name. The study's user attributes hold what
boxtune adds (the spec, the status, the driver process, a stop request); each trial's user
attributes hold its job's name, hyperparameters and outcome, so any process that reaches the
storage can show the tuning job (``load_tuning``), and stop it.
"""

from __future__ import annotations

import logging
import socket
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from boxtune.errors import BoxtuneError
from boxtune.jobs.registry_file import registry_path

if TYPE_CHECKING:
    import optuna

    from boxtune.tuning.spec import CheckedSpec

# Study user attributes.
SPEC = "boxtune_spec"
STATUS = "status"
FAILURE_REASON = "failure_reason"
DRIVER = "driver"  # {"pid", "identity", "host", "log"}
STOP_REQUESTED = "stop_requested"
CREATED_AT = "created_at"
ENDED_AT = "ended_at"
# Trial user attributes.
JOB_NAME = "job_name"
HYPERPARAMETERS = "hyperparameters"
BASELINE = "baseline"
TRIAL_STATE = "boxtune_state"  # "Stopped" for a trial Optuna records as FAIL
TRIAL_REASON = "failure_reason"
METRICS = "metrics"
PRUNED_AT = "pruned_after_epoch"

IN_PROGRESS, COMPLETED, FAILED, STOPPED = "InProgress", "Completed", "Failed", "Stopped"
SQLITE_TIMEOUT_S = 60


def import_optuna():
    try:
        import optuna
    except ModuleNotFoundError as exc:
        raise BoxtuneError(
            "hyperparameter tuning needs Optuna, which is not installed",
            hint="pip install 'boxtune[train]' (or pip install optuna)",
        ) from exc
    optuna.logging.set_verbosity(logging.WARNING)  # boxtune reports the trials itself
    return optuna


def default_storage_url() -> str:
    """An SQLite file beside the job registry (``BOXTUNE_HOME/tuning.db``)."""
    return f"sqlite:///{registry_path().parent / 'tuning.db'}"


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    optuna = import_optuna()
    url = url or default_storage_url()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # The driver and readers (`boxtune tune show`) share the file: wait for its lock.
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # SQLAlchemy: a bad URL, a missing driver, a refused connection
        raise BoxtuneError(
            f"cannot open the tuning storage {url}: {type(exc).__name__}: {exc}",
            where="storage_url",
            hint="give an SQLAlchemy URL such as sqlite:////path/tuning.db or "
            "postgresql://user@host/db (leave it out for BOXTUNE_HOME/tuning.db)",
        ) from exc


@contextmanager
def quiet_experimental():
    optuna = import_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def startup_trials(max_jobs: int) -> int:
    """Completed trials before the median rule prunes: a few, fewer for a small budget."""
    return max(1, min(5, max_jobs // 3))


def sampler_for(checked: CheckedSpec) -> optuna.samplers.BaseSampler:
    """Bayesian and Hyperband: TPE; Random: random search; Grid: every combination."""
    from boxtune.tuning import ranges as rng

    optuna = import_optuna()
    spec = checked.spec
    if spec.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.strategy == "Grid":
        return optuna.samplers.GridSampler(rng.grid_space(spec.ranges), seed=spec.seed)
    with quiet_experimental():
        # Random trials first (the baseline counts), then TPE; constant_liar keeps parallel
        # trials from being sampled at the same point.
        return optuna.samplers.TPESampler(
            seed=spec.seed,
            n_startup_trials=max(1, min(10, checked.total_jobs // 2)),
            constant_liar=True,
        )


def pruner_for(checked: CheckedSpec) -> optuna.pruners.BasePruner:
    """Hyperband: Hyperband's successive halving over epochs; early stopping: the median rule
    (a trial stops when its best value so far is worse than the median of the completed
    trials at the same epoch, as the platform's "Auto" early stopping); else none."""
    optuna = import_optuna()
    spec = checked.spec
    if spec.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, spec.pruner_warmup_epochs),
            max_resource=max_epochs(checked),
            reduction_factor=3,
        )
    if spec.early_stopping:
        startup = spec.pruner_startup_trials
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials(spec.max_jobs) if startup is None else startup,
            n_warmup_steps=spec.pruner_warmup_epochs,
        )
    return optuna.pruners.NopPruner()


def max_epochs(checked: CheckedSpec) -> int:
    """The most epochs a trial trains (Hyperband's full resource)."""
    from boxtune.tuning.ranges import CategoricalRange, IntegerRange

    tuned = checked.spec.ranges.get("epochs")
    if isinstance(tuned, IntegerRange):
        return int(tuned.max_value)
    if isinstance(tuned, CategoricalRange):
        return max(int(float(v)) for v in tuned.values)
    return int(checked.defaults.get("epochs", "1"))


def pruning(checked: CheckedSpec) -> bool:
    return checked.spec.strategy == "Hyperband" or checked.spec.early_stopping


def create_study(checked: CheckedSpec, storage) -> optuna.Study:
    optuna = import_optuna()
    spec = checked.spec
    try:
        with quiet_experimental():
            study = optuna.create_study(
                study_name=spec.name,
                storage=storage,
                direction=spec.objective.direction,
                sampler=sampler_for(checked),
                pruner=pruner_for(checked),
            )
    except optuna.exceptions.DuplicatedStudyError:
        raise BoxtuneError(
            f"a tuning job named {spec.name!r} exists already",
            where=spec.storage_url or default_storage_url(),
            hint="pick another name (or leave it out for a timestamped one); "
            f"`boxtune tune show {spec.name}` shows the existing one",
        ) from None
    return study


def load_study(name: str, storage, checked: CheckedSpec | None = None) -> optuna.Study:
    optuna = import_optuna()
    try:
        with quiet_experimental():
            return optuna.load_study(
                study_name=name,
                storage=storage,
                sampler=sampler_for(checked) if checked else None,
                pruner=pruner_for(checked) if checked else None,
            )
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise BoxtuneError(
            f"no tuning job named {name!r}",
            where=_storage_label(storage),
            hint=("the tuning jobs there: " + ", ".join(names[-5:]) if names else "it holds none")
            + " (give --storage / storage_url when the tuning job used another storage)",
        ) from None


def _storage_label(storage) -> str:
    url = getattr(storage, "url", None)
    return str(url) if url else "the tuning storage"


def this_host() -> str:
    return socket.gethostname()

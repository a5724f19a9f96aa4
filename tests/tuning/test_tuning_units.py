"""Tuning without training: ranges -> Optuna, strategies, the checks, reading objective values."""

from __future__ import annotations

import re

import optuna
import pytest

from boxtune import jobs
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.cli import main as cli_main
from boxtune.errors import BoxtuneError
from boxtune.tuning import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    Objective,
    TrialResult,
    TuningResult,
    TuningSpec,
    check_spec,
    parse_range,
    run_tuning,
    trial_job_name,
    values_from_log,
)
from boxtune.tuning import ranges as rng
from boxtune.tuning import study as st
from boxtune.tuning.objective import resolve, values_from_records
from boxtune.tuning.spec import MAX_NAME_LENGTH

LOSS = Objective("validation:localization_loss", "minimize")


def make_spec(tmp_path, **changes) -> TuningSpec:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    values = dict(
        training=str(data),
        output_path=str(tmp_path / "out"),
        objective=LOSS,
        model_id=DEFAULT_MODEL_ID,
        ranges={"learning_rate": ContinuousRange(0.0001, 0.1)},
        max_jobs=4,
        max_parallel_jobs=2,
    )
    values.update(changes)
    return TuningSpec("unit", **values)


# -- ranges -> Optuna distributions --------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            ContinuousRange(0.0001, 0.1),
            optuna.distributions.FloatDistribution(0.0001, 0.1, log=True),
        ),
        (ContinuousRange(0.1, 0.9), optuna.distributions.FloatDistribution(0.1, 0.9)),
        (ContinuousRange(0.0, 1.0), optuna.distributions.FloatDistribution(0.0, 1.0)),  # min 0
        (
            ContinuousRange(0.01, 0.1, "Logarithmic"),
            optuna.distributions.FloatDistribution(0.01, 0.1, log=True),
        ),
        (
            ContinuousRange(0.0001, 0.1, "Linear"),
            optuna.distributions.FloatDistribution(0.0001, 0.1),
        ),
        (IntegerRange(1, 200), optuna.distributions.IntDistribution(1, 200, log=True)),
        (IntegerRange(1, 10), optuna.distributions.IntDistribution(1, 10)),
        (
            CategoricalRange(("adam", "sgd")),
            optuna.distributions.CategoricalDistribution(["adam", "sgd"]),
        ),
    ],
)
def test_ranges_map_to_optuna_distributions(spec, expected):
    assert rng.distribution("x", rng.check_range("x", spec)) == expected
    assert rng.param_name("x", spec) == "x"


def test_reverse_logarithmic_is_one_minus_x_on_a_log_scale():
    spec = rng.check_range("momentum", ContinuousRange(0.9, 0.999, "ReverseLogarithmic"))
    assert rng.param_name("momentum", spec) == "1-momentum"
    distribution = rng.distribution("momentum", spec)
    assert distribution.log and distribution.low == pytest.approx(0.001)
    assert distribution.high == pytest.approx(0.1)
    ranges = {"momentum": spec}
    assert rng.values_from_params(ranges, {"1-momentum": 0.01}) == {"momentum": "0.99"}
    assert rng.param_from_value("momentum", spec, "0.95") == pytest.approx(0.05)
    assert rng.param_from_value("momentum", spec, "0.5") is None  # outside the range


def test_values_become_job_strings_within_the_range():
    ranges = {
        "learning_rate": ContinuousRange(0.0001, 0.1234567),
        "epochs": IntegerRange(1, 5),
        "optimizer": CategoricalRange(("adam", "sgd")),
    }
    params = {"learning_rate": 0.000123456789, "epochs": 3, "optimizer": "sgd"}
    assert rng.values_from_params(ranges, params) == {
        "learning_rate": "0.000123457",
        "epochs": "3",
        "optimizer": "sgd",
    }
    at_the_end = rng.values_from_params(ranges, {**params, "learning_rate": 0.1234567})
    assert float(at_the_end["learning_rate"]) <= 0.1234567  # rounding never leaves the range
    assert rng.param_from_value("optimizer", ranges["optimizer"], "SGD") == "sgd"
    assert rng.param_from_value("epochs", ranges["epochs"], "9") is None


def test_cli_range_spelling():
    assert parse_range("learning_rate=0.0001:0.1:log", "float") == (
        "learning_rate",
        ContinuousRange(0.0001, 0.1, "Logarithmic"),
    )
    assert parse_range("epochs=2:8", "int") == ("epochs", IntegerRange(2, 8, "Auto"))
    # A float hyperparameter with whole-number ends is still continuous.
    assert parse_range("learning_rate=0:1", "float")[1] == ContinuousRange(0.0, 1.0)
    assert parse_range("batch_size=2:16")[1] == IntegerRange(2, 16)  # unknown kind: guessed
    assert parse_range("optimizer=adam, sgd")[1] == CategoricalRange(("adam", "sgd"))
    assert parse_range("momentum=0.9:0.999:reverselog")[1].scaling_type == "ReverseLogarithmic"
    for bad, message in [
        ("learning_rate", "expected NAME=MIN:MAX"),
        ("learning_rate=0.1:0.2:cubic", "unknown scale 'cubic'"),
        ("epochs=1.5:3", "'1.5' is not an integer"),
        ("learning_rate=a:b", "'a' is not a number"),
    ]:
        with pytest.raises(BoxtuneError, match=re.escape(message)) as info:
            parse_range(bad, "int" if bad.startswith("epochs") else "float")
        assert info.value.where == "--range"


def test_grid_space_enumerates_integer_and_categorical_ranges():
    space = rng.grid_space(
        {"epochs": IntegerRange(2, 4), "optimizer": CategoricalRange(("a", "b"))}
    )
    assert space == {"epochs": [2, 3, 4], "optimizer": ["a", "b"]}
    assert rng.grid_size({"epochs": IntegerRange(2, 4), "o": CategoricalRange(("a", "b"))}) == 6


# -- strategies -> sampler and pruner ------------------------------------------------------------
def test_strategy_mapping(tmp_path):
    bayesian = check_spec(make_spec(tmp_path))
    assert isinstance(st.sampler_for(bayesian), optuna.samplers.TPESampler)
    assert isinstance(st.pruner_for(bayesian), optuna.pruners.NopPruner)
    assert not st.pruning(bayesian)

    early = check_spec(make_spec(tmp_path, early_stopping=True, max_jobs=6))
    pruner = st.pruner_for(early)
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == st.startup_trials(6) == 2
    configured = check_spec(
        make_spec(tmp_path, early_stopping=True, pruner_startup_trials=1, pruner_warmup_epochs=2)
    )
    assert st.pruner_for(configured)._n_startup_trials == 1
    assert st.pruner_for(configured)._n_warmup_steps == 2

    random = check_spec(make_spec(tmp_path, strategy="random", seed=3))
    assert random.spec.strategy == "Random"
    assert isinstance(st.sampler_for(random), optuna.samplers.RandomSampler)

    hyperband = check_spec(
        make_spec(tmp_path, strategy="Hyperband", hyperparameters={"epochs": "9"})
    )
    assert isinstance(st.sampler_for(hyperband), optuna.samplers.TPESampler)
    assert isinstance(st.pruner_for(hyperband), optuna.pruners.HyperbandPruner)
    assert st.max_epochs(hyperband) == 9 and st.pruning(hyperband)
    tuned_epochs = check_spec(
        make_spec(tmp_path, strategy="Hyperband", ranges={"epochs": IntegerRange(2, 12)})
    )
    assert st.max_epochs(tuned_epochs) == 12


def test_grid_strategy_covers_the_grid_without_a_baseline(tmp_path):
    ranges = {"epochs": IntegerRange(2, 3), "optimizer": CategoricalRange(("adam", "sgd"))}
    checked = check_spec(make_spec(tmp_path, strategy="Grid", ranges=ranges, max_jobs=10))
    assert isinstance(st.sampler_for(checked), optuna.samplers.GridSampler)
    assert checked.total_jobs == 4  # the grid's size, not max_jobs
    assert checked.baseline is None
    assert any("4 combinations" in note for note in checked.notes)


def test_baseline_is_the_model_defaults_of_the_tuned_names(tmp_path):
    from boxtune.train.hyperparameters import retrieve_default

    default_lr = float(retrieve_default(DEFAULT_MODEL_ID)["learning_rate"])
    checked = check_spec(make_spec(tmp_path))
    assert checked.baseline == {"learning_rate": pytest.approx(default_lr)}
    # A fixed value replaces the model's default in the baseline too.
    fixed = check_spec(
        make_spec(
            tmp_path,
            hyperparameters={"optimizer": "sgd"},
            ranges={"momentum": ContinuousRange(0.5, 0.95)},
        )
    )
    assert fixed.baseline == {"momentum": pytest.approx(0.9)}
    outside = check_spec(make_spec(tmp_path, ranges={"learning_rate": ContinuousRange(0.01, 0.1)}))
    assert outside.baseline is None
    assert "no baseline trial: the default learning_rate=" in outside.notes[0]
    assert check_spec(make_spec(tmp_path, include_defaults=False)).baseline is None


# -- checks before anything starts ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        (
            {"ranges": {"learning_rate": ContinuousRange(0.1, 0.01)}},
            "range of hyperparameter learning_rate",
            "min_value 0.1 must be less than max_value 0.01",
        ),
        (
            {"ranges": {"learning_rate": ContinuousRange(0.0, 0.1, "Logarithmic")}},
            "range of hyperparameter learning_rate",
            "a logarithmic scale needs min_value > 0",
        ),
        (
            {"ranges": {"learnig_rate": ContinuousRange(0.001, 0.1)}},
            "range of hyperparameter learnig_rate",
            "unknown hyperparameter 'learnig_rate' (did you mean learning_rate",
        ),
        (
            {"ranges": {"learning_rate": ContinuousRange(0.001, 2.0)}},
            "range of hyperparameter learning_rate",
            "learning_rate=2 is not allowed: learning_rate='2': out of range; allowed: a number "
            "in [0, 1]",
        ),
        (
            {"ranges": {"optimizer": CategoricalRange(("adam", "adamw"))}},
            "range of hyperparameter optimizer",
            "optimizer=adamw is not allowed",
        ),
        (
            {"ranges": {"epochs": ContinuousRange(1, 10)}},
            "range of hyperparameter epochs",
            "epochs takes whole numbers, not a continuous range",
        ),
        (
            {"ranges": {"momentum": ContinuousRange(0.5, 1.5, "ReverseLogarithmic")}},
            "range of hyperparameter momentum",
            "a reverse logarithmic scale needs 0 <= min_value < max_value < 1",
        ),
        (
            {"ranges": {"epochs": IntegerRange(1, 5, "ReverseLogarithmic")}},
            "range of hyperparameter epochs",
            "ReverseLogarithmic applies to continuous ranges only",
        ),
        (
            {"ranges": {"optimizer": CategoricalRange(())}},
            "range of hyperparameter optimizer",
            "at least one value",
        ),
        ({"ranges": {}}, "ranges", "nothing to tune"),
        (
            {"hyperparameters": {"learning_rate": "0.01"}},
            "range of hyperparameter learning_rate",
            "learning_rate is both tuned and fixed",
        ),
        (
            {"hyperparameters": {"epochs": "0"}},
            "hyperparameters",
            "invalid static hyperparameters: epochs='0': out of range",
        ),
        (
            {"max_parallel_jobs": 5, "max_jobs": 3},
            "max_parallel_jobs",
            "max_parallel_jobs=5 is more than max_jobs=3",
        ),
        ({"max_jobs": 0}, "max_jobs", "max_jobs must be at least 1"),
        (
            {"strategy": "Grid"},
            "range of hyperparameter learning_rate",
            "the Grid strategy cannot enumerate the continuous range of learning_rate",
        ),
        ({"strategy": "Evolutionary"}, "strategy", "unknown strategy 'Evolutionary'"),
        (
            {"objective": Objective("val_mAP", "maximize")},
            "objective.name",
            "unknown objective metric 'val_mAP' (did you mean",
        ),
        (
            {"objective": Objective("val_map", "up")},
            "objective.direction",
            "unknown objective direction 'up'",
        ),
        (
            {"objective": Objective("m", "maximize", r"Val_mAP=[0-9\.]+")},
            "objective.regex",
            "has no group",
        ),
        (
            {"objective": Objective("m", "maximize", r"Val_mAP=([0-9\.]+")},
            "objective.regex",
            "does not compile",
        ),
        (
            {"metric_definitions": [{"Name": "x"}]},
            "metric_definitions[0]",
            "expected a dict with Name and Regex",
        ),
        (
            {"enqueue": [{"learning_rate": "0.5"}]},
            "enqueue[0]",
            "learning_rate=0.5 is outside its range",
        ),
        (
            {"enqueue": [{"optimizer": "sgd"}]},
            "enqueue[0]",
            "optimizer is not a tuned hyperparameter",
        ),
        ({"model_id": None}, "model_id", "a tuning job needs a model"),
        (
            {"training": "/nonexistent/data"},
            "training",
            "the training dataset /nonexistent/data does not exist",
        ),
    ],
)
def test_invalid_specs_name_the_field_and_start_nothing(tmp_path, changes, where, message):
    spec = make_spec(tmp_path, **changes)
    with pytest.raises(BoxtuneError) as info:
        run_tuning(spec)
    assert info.value.where == where
    assert message in info.value.message
    assert info.value.hint  # and how to fix it
    assert jobs.list_jobs() == []
    assert optuna.get_all_study_names(st.open_storage(None)) == []


def test_cli_reports_bad_ranges_before_starting(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    code = cli_main(
        ["tune", "--training", str(data), "--output-path", str(tmp_path / "o"),
         "--range", "learning_rate=0.0001:0.1:log", "--max-jobs", "2", "--max-parallel-jobs", "3"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "max_parallel_jobs: max_parallel_jobs=3 is more than max_jobs=2" in err
    assert "hint: lower max_parallel_jobs" in err
    code = cli_main(["tune", "--training", str(data), "--output-path", "o", "--range", "lr"])
    assert code == 1 and "--range: expected NAME=MIN:MAX" in capsys.readouterr().err
    code = cli_main(["tune", "--output-path", "o", "--range", "learning_rate=0.01:0.1"])
    assert code == 1 and "boxtune tune needs --training" in capsys.readouterr().err
    code = cli_main(
        ["tune", "--training", str(data), "--output-path", "o", "--range",
         "learning_rate=0.01:0.1", "--objective", "speed"]
    )  # fmt: skip
    assert code == 1 and "--objective-type: which way is 'speed' better?" in capsys.readouterr().err
    assert jobs.list_jobs() == []


def test_a_tuning_name_is_used_once(tmp_path):
    from boxtune.tuning.api import prepare

    prepare(make_spec(tmp_path))
    with pytest.raises(BoxtuneError, match="a tuning job named 'unit' exists already"):
        prepare(make_spec(tmp_path))


def test_show_names_the_storage_when_the_tuning_job_is_unknown(capsys):
    assert cli_main(["tune", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert "no tuning job named 'nope'" in err and "tuning.db" in err


# -- objective values ----------------------------------------------------------------------------
# What a job's log looks like: progress bars rewritten with \r (their postfix has "loss="), the
# trainer's epoch lines, the supervisor's lines.
JOB_LOG = (
    "[boxtune-job] running: python -m boxtune.cli train --hp early_stopping_metric=loss\n"
    "epoch 1/2:  33%|###| 1/3 [loss=1.6966, lr=6.67e-04]\repoch 1/2: 100%|###| 3/3 "
    "[loss=1.7176, lr=1.25e-03]\r        \r[Epoch 0], Speed: 11.334 samples/sec, loss=1.6934.\n"
    "[Epoch 0], Val_localization=1.3004, Val_classification=0.4377\n"
    "[Epoch 0], Val_mAP=0.0000, Val_mAP50=0.0000\n"
    "epoch 2/2: 100%|###| 3/3 [loss=1.5896, lr=1.05e-03]\r[Epoch 1], Speed: 19.462 "
    "samples/sec, loss=1.6479.\n"
    "[Epoch 1], Val_localization=1.2994, Val_classification=0.4393\n"
    "[Epoch 1], Val_mAP=n/a, Val_mAP50=n/a\n"
    "done: best epoch 0, validation mAP50 0.0000, mAP 0.0000\n"
)


def test_log_values_are_one_per_epoch_and_skip_progress_bars():
    assert values_from_log(JOB_LOG, r"loss=([0-9\.]+).") == [(0, 1.6934), (1, 1.6479)]
    assert values_from_log(JOB_LOG, r"Val_localization=([0-9\.]+)") == [(0, 1.3004), (1, 1.2994)]
    assert values_from_log(JOB_LOG, r"Val_mAP=([0-9\.]+)") == [(0, 0.0)]  # "n/a" is no value
    assert values_from_log(JOB_LOG, r"Val_nothing=([0-9\.]+)") == []
    # A log without the trainer's epoch marks: each match is the next epoch (the platform's way).
    plain = "step: acc=0.5\nstep: acc=0.7\nacc=oops\n"
    assert values_from_log(plain, r"acc=([0-9\.]+)") == [(0, 0.5), (1, 0.7)]


def test_objective_sources():
    assert resolve(LOSS).key == "val_localization"
    assert resolve(Objective("val_map", "maximize")).key == "val_map"
    by_definition = resolve(
        Objective("my:map", "maximize"), [{"Name": "my:map", "Regex": r"Val_mAP=([0-9\.]+)"}]
    )
    assert by_definition.regex == r"Val_mAP=([0-9\.]+)"
    own = resolve(Objective("x", "minimize", r"loss=([0-9\.]+)."))
    assert own.values(JOB_LOG, []) == [(0, 1.6934), (1, 1.6479)]
    assert repr(r"loss=([0-9\.]+).") in own.missing()
    records = [
        {"epoch": 0, "val_map": 0.1},
        {"epoch": 1, "val_map": None},
        {"epoch": 2, "val_map": 0.3},
    ]
    assert values_from_records(records, "val_map") == [(0, 0.1), (2, 0.3)]


# -- names, results, JSON ------------------------------------------------------------------------
def test_trial_job_names_follow_the_platform_and_fit_the_limit():
    assert re.fullmatch(r"lr-search-001-[0-9a-f]{8}", trial_job_name("lr-search", 0))
    assert re.fullmatch(r"lr-search-012-[0-9a-f]{8}", trial_job_name("lr-search", 11))
    long = trial_job_name("t" * 60 + "-x", 4)
    assert len(long) <= MAX_NAME_LENGTH
    jobs.validate_name(long)
    assert trial_job_name("abc", 0) != trial_job_name("abc", 0)


def test_best_trial_follows_the_direction():
    def trial(number, state, value):
        return TrialResult(number, f"j{number}", {}, state, value, {})

    trials = [
        trial(0, "Completed", 0.5),
        trial(1, "Completed", 0.2),
        trial(2, "Pruned", 0.1),  # pruned trials never win
        trial(3, "Failed", None),
        trial(4, "Completed", 0.2),
    ]
    low = TuningResult("t", "Completed", Objective("val_loss", "minimize"), trials, "sqlite://")
    high = TuningResult("t", "Completed", Objective("val_map", "maximize"), trials, "sqlite://")
    assert low.best.number == 1  # the first on a tie
    assert high.best.number == 0
    assert TuningResult("t", "Completed", LOSS, trials[2:4], "sqlite://").best is None
    assert low.counts()["Completed"] == 3 and low.to_json()["best"]["number"] == 1


def test_spec_json_round_trip(tmp_path):
    spec = make_spec(
        tmp_path,
        ranges={
            "learning_rate": ContinuousRange(0.0001, 0.1, "Logarithmic"),
            "epochs": IntegerRange(2, 4),
            "optimizer": CategoricalRange(("adam", "sgd")),
        },
        metric_definitions=[{"Name": "m", "Regex": r"Val_mAP=([0-9\.]+)"}],
        enqueue=[{"learning_rate": "0.01"}],
    )
    path = tmp_path / "spec.json"
    spec.write(path)
    assert TuningSpec.read(path) == spec


def test_trial_jobs_keep_the_metric_definitions_and_the_objective_regex(tmp_path):
    from boxtune.tuning.runner import trial_metric_definitions

    definitions = [{"Name": "validation:mAP", "Regex": r"Val_mAP=([0-9\.]+)"}]
    regex = r"Val_localization=([0-9\.]+)"
    spec = make_spec(
        tmp_path,
        objective=Objective("validation:localization_loss", "minimize", regex),
        metric_definitions=definitions,
    )
    assert trial_metric_definitions(spec) == [
        *definitions,
        {"Name": "validation:localization_loss", "Regex": regex},
    ]
    assert trial_metric_definitions(make_spec(tmp_path, metric_definitions=definitions)) == (
        definitions
    )

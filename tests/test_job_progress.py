"""What the console shows about jobs without running any: a training job's progress and ETA
(``jobs.progress``), the evaluation job's name and the artifact a job wrote
(``jobs.evaluation``), and one look at a starting endpoint (``jobs.endpoints.check_startup``).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxtune.errors import BoxtuneError
from boxtune.jobs import EndpointRecord, JobRecord, Registry, check_startup
from boxtune.jobs.evaluation import (
    SUFFIX,
    evaluation_job_name,
    find_evaluation_job,
    job_artifact,
    report_dir,
    submit_evaluation_job,
)
from boxtune.jobs.progress import training_progress
from boxtune.jobs.store import (
    COMPLETED,
    FAILED,
    MAX_NAME_LENGTH,
    QUEUED,
    RUNNING,
    STARTING,
    STOPPED,
    name_from_base,
    validate_name,
)

STARTED = 1_000_000.0


def job(
    status: str = RUNNING,
    *,
    epochs: str | None = "10",
    done: int = 0,
    started_at: float | None = STARTED,
    ended_at: float | None = None,
    name: str = "job-1",
    work_dir: str = "/nonexistent/job-1",
) -> JobRecord:
    return JobRecord(
        name=name,
        status=status,
        model_id="pytorch-od1-efficientdet-lite0-320",
        base_model=None,
        hyperparameters={} if epochs is None else {"epochs": epochs, "batch_size": "8"},
        inputs={"training": "/data/train"},
        output_path=None,
        model_data=None,
        work_dir=work_dir,
        log_path=f"{work_dir}/job.log",
        command=["true"],
        created_at=STARTED - 5,
        started_at=started_at,
        ended_at=ended_at,
        metrics=[{"epoch": e, "loss": 1.0 / e} for e in range(1, done + 1)],
    )


# --- training_progress -------------------------------------------------------------------------


def test_running_job_has_a_pace_and_an_eta():
    progress = training_progress(job(done=4), now=STARTED + 80)
    assert progress.epochs_done == 4
    assert progress.epochs_total == 10
    assert progress.fraction == pytest.approx(0.4)
    assert progress.seconds_per_epoch == pytest.approx(20.0)
    assert progress.eta_s == pytest.approx(120.0)  # 6 epochs left at 20 s each


def test_eta_follows_the_clock():
    later = training_progress(job(done=4), now=STARTED + 160)
    assert later.seconds_per_epoch == pytest.approx(40.0)
    assert later.eta_s == pytest.approx(240.0)


def test_default_clock_is_now():
    progress = training_progress(job(done=2, started_at=time.time() - 30))
    assert progress.seconds_per_epoch == pytest.approx(15.0, abs=1.0)
    assert progress.eta_s == pytest.approx(8 * 15.0, abs=10.0)


def test_before_the_first_epoch_there_is_no_eta():
    for started_at in (STARTED, None):
        progress = training_progress(job(done=0, started_at=started_at), now=STARTED + 50)
        assert progress.epochs_done == 0
        assert progress.fraction == 0.0
        assert progress.seconds_per_epoch is None and progress.eta_s is None


def test_queued_job():
    progress = training_progress(job(QUEUED, started_at=None), now=STARTED)
    assert (progress.epochs_done, progress.epochs_total, progress.eta_s) == (0, 10, None)


def test_completed_job_is_whole_even_when_stopped_early():
    finished = job(COMPLETED, done=3, ended_at=STARTED + 90)
    progress = training_progress(finished, now=STARTED + 10_000)
    assert progress.epochs_done == 3 and progress.epochs_total == 10
    assert progress.fraction == 1.0
    assert progress.eta_s == 0.0
    assert progress.seconds_per_epoch == pytest.approx(30.0)  # up to its end, not now


@pytest.mark.parametrize("status", [FAILED, STOPPED])
def test_ended_job_keeps_its_fraction_and_has_no_eta(status: str):
    progress = training_progress(job(status, done=2, ended_at=STARTED + 40), now=STARTED + 999)
    assert progress.fraction == pytest.approx(0.2)
    assert progress.eta_s is None
    assert progress.seconds_per_epoch == pytest.approx(20.0)


def test_missing_epochs_hyperparameter():
    progress = training_progress(job(epochs=None, done=3), now=STARTED + 30)
    assert progress.epochs_total is None
    assert progress.fraction is None
    assert progress.eta_s is None
    assert progress.seconds_per_epoch == pytest.approx(10.0)
    assert training_progress(job(epochs="many", done=1), now=STARTED + 1).epochs_total is None


def test_epochs_written_as_a_float_and_more_epochs_than_planned():
    assert training_progress(job(epochs="4.0", done=1), now=STARTED + 1).epochs_total == 4
    over = training_progress(job(epochs="2", done=3), now=STARTED + 30)
    assert over.fraction == 1.0 and over.eta_s == 0.0


def test_progress_to_json():
    data = training_progress(job(done=3), now=STARTED + 10).to_json()
    assert data == {
        "epochs_done": 3,
        "epochs_total": 10,
        "fraction": 0.3,
        "seconds_per_epoch": 3.33,  # rounded to 2 places
        "eta_s": 23.3,  # 7 x 10/3 s, rounded to 1 place
    }
    json.dumps(data)


# --- evaluation --------------------------------------------------------------------------------


def test_evaluation_job_name():
    assert evaluation_job_name("my-job") == "my-job-eval"
    longest = "a" * MAX_NAME_LENGTH
    for name in (longest, name_from_base("pytorch-od1-efficientdet-lite0-320"), "x" * 60):
        evaluation = evaluation_job_name(name)
        assert len(evaluation) <= MAX_NAME_LENGTH
        assert evaluation.endswith(SUFFIX) and SUFFIX == "-eval"
        assert validate_name(evaluation) == evaluation
    assert evaluation_job_name(longest) == "a" * (MAX_NAME_LENGTH - 5) + "-eval"
    # Names that differ only past the cut share an evaluation name: the cut is deterministic.
    assert evaluation_job_name("b" * 58 + "one") == evaluation_job_name("b" * 58 + "two")


def write_artifact(work_dir: Path, sub: str = "") -> Path:
    folder = work_dir / "train-output" / sub
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tar.gz").write_bytes(b"not really a model")
    return folder


@pytest.mark.parametrize("status", [QUEUED, RUNNING])
def test_job_artifact_of_an_active_job(tmp_path: Path, status: str):
    write_artifact(tmp_path)  # even a checkpoint written so far is not "the model"
    with pytest.raises(BoxtuneError) as caught:
        job_artifact(job(status, work_dir=str(tmp_path)))
    assert f"has no model yet (it is {status})" in caught.value.message
    assert "wait until it is completed" in caught.value.hint


def test_job_artifact_of_a_failed_job(tmp_path: Path):
    with pytest.raises(BoxtuneError) as caught:
        job_artifact(job(FAILED, work_dir=str(tmp_path), name="broken-job"))
    assert "(it is failed)" in caught.value.message
    assert "boxtune jobs show broken-job" in caught.value.hint


def test_job_artifact_of_a_completed_job(tmp_path: Path):
    with pytest.raises(BoxtuneError, match="has no model yet"):
        job_artifact(job(COMPLETED, work_dir=str(tmp_path)))
    folder = write_artifact(tmp_path, "model")
    assert job_artifact(job(COMPLETED, work_dir=str(tmp_path))) == folder
    top = write_artifact(tmp_path)
    assert job_artifact(job(COMPLETED, work_dir=str(tmp_path))) == top  # the shallowest


def test_report_dir():
    assert report_dir(job(work_dir="/w/job-1")) == Path("/w/job-1/evaluation")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    return Registry()


def test_find_and_submit_evaluation(registry: Registry, tmp_path: Path):
    from boxtune.jobs import list_jobs

    assert find_evaluation_job("trained-job", registry) is None
    with pytest.raises(BoxtuneError, match="no training job named 'trained-job'"):
        submit_evaluation_job("trained-job", registry=registry)
    running = job(RUNNING, name="trained-job", work_dir=str(tmp_path / "w"))
    running.created_at = time.time()  # registered just now: not an orphan yet
    registry.insert_job(running)
    with pytest.raises(BoxtuneError, match="has no model yet"):
        submit_evaluation_job("trained-job", registry=registry)
    assert [j.name for j in list_jobs(registry=registry)] == ["trained-job"]
    # An evaluation that exists already is found and returned, not started again.
    done = job(COMPLETED, name=evaluation_job_name("trained-job"), ended_at=STARTED + 5)
    registry.insert_job(done)
    found = find_evaluation_job("trained-job", registry)
    assert found is not None and found.name == "trained-job-eval"
    assert submit_evaluation_job("trained-job", registry=registry).name == "trained-job-eval"
    assert len(list_jobs(registry=registry)) == 2


# --- check_startup -----------------------------------------------------------------------------


class _Ping(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")

    def do_GET(self):
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def ping_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ping)
    server.answer = (200, {}, b"{}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def starting_endpoint(registry: Registry, port: int, tmp_path: Path) -> str:
    registry.insert_endpoint(
        EndpointRecord(
            name="try-me",
            status=STARTING,
            model="/models/a",
            model_id=None,
            job_name=None,
            host="127.0.0.1",
            port=port,
            backend=None,
            log_path=str(tmp_path / "endpoint.log"),
            command=["true"],
            created_at=time.time(),
        )
    )
    return "try-me"


def test_check_startup_of_an_unknown_endpoint(registry: Registry):
    with pytest.raises(BoxtuneError, match="no endpoint named 'ghost'"):
        check_startup("ghost", registry)


def test_check_startup_becomes_running(registry: Registry, tmp_path: Path, ping_server):
    name = starting_endpoint(registry, ping_server.server_address[1], tmp_path)
    endpoint = check_startup(name, registry)
    assert endpoint.status == RUNNING and endpoint.started_at is not None
    assert check_startup(name, registry).status == RUNNING  # no change once running


def test_check_startup_waits_while_loading(registry: Registry, tmp_path: Path, ping_server):
    ping_server.answer = (503, {}, b'{"status": "loading"}')
    name = starting_endpoint(registry, ping_server.server_address[1], tmp_path)
    assert check_startup(name, registry).status == STARTING


def test_check_startup_records_a_load_failure(registry: Registry, tmp_path: Path, ping_server):
    body = json.dumps({"error": "model.tar.gz is damaged"}).encode()
    ping_server.answer = (503, {"x-boxtune-error-reason": "load_failed"}, body)
    name = starting_endpoint(registry, ping_server.server_address[1], tmp_path)
    endpoint = check_startup(name, registry)
    assert endpoint.status == FAILED
    assert endpoint.failure_reason == "model.tar.gz is damaged"
    assert endpoint.ended_at is not None

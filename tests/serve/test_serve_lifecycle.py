"""Server processes through their life: loading, batching, workers, failures, SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
from serve_fakes import encode, scene
from serve_process import ServerProcess

PNG = encode(scene(64, 48, {0: (4, 4, 30, 30)}))
FAKE = "py:serve_fakes:make_runner"


def _post(url: str, body: bytes = PNG, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"Content-Type": "application/x-image"},
        timeout=timeout,
    )


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_503_while_the_model_loads(tmp_path):
    server = ServerProcess(FAKE, log_path=tmp_path / "log", env={"BOXTUNE_FAKE_LOAD_S": "3"})
    with server:
        server.wait_listening()
        ping = httpx.get(f"{server.url}/ping")
        assert ping.status_code == 503
        assert ping.json()["error"] == "model is still loading"
        assert ping.headers["retry-after"] == "1"
        assert _post(server.url).status_code == 503
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
        server.wait_ready(timeout=30)
        assert _post(server.url).status_code == 200
        assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}


def test_concurrent_requests_share_model_calls(tmp_path):
    server = ServerProcess(
        FAKE,
        "--max-batch-size",
        "8",
        "--max-batch-delay-ms",
        "20",
        log_path=tmp_path / "log",
        env={"BOXTUNE_FAKE_DELAY_S": "0.05"},
    )
    with server:
        server.wait_ready()
        threads = [threading.Thread(target=_post, args=(server.url,)) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        text = httpx.get(f"{server.url}/metrics").text
    assert _metric(text, "boxtune_batch_size_sum") == 24
    assert _metric(text, "boxtune_batch_size_count") <= 12  # 24 images in at most 12 calls
    assert _metric(text, "boxtune_batch_size_bucket", le="1.0") < 24


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    server = ServerProcess(
        FAKE,
        "--max-batch-size",
        "1",
        log_path=tmp_path / "log",
        env={"BOXTUNE_FAKE_DELAY_S": "0.5"},
    )
    server.start()
    server.wait_ready()
    results: list[int | str] = []

    def call():
        try:
            results.append(_post(server.url).status_code)
        except httpx.HTTPError as exc:
            results.append(repr(exc))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # all four are in flight: one in the model, three queued behind it
    started = time.monotonic()
    returncode = server.terminate(timeout=30)
    for thread in threads:
        thread.join()
    assert results == [200] * 4
    assert returncode == 0
    assert time.monotonic() - started >= 1.0  # it waited for the queued work
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/ping", timeout=2)
    assert "Traceback" not in server.log()


def test_several_workers_and_aggregated_metrics(tmp_path):
    server = ServerProcess(FAKE, "--workers", "2", log_path=tmp_path / "log")
    with server:
        server.wait_ready()
        with httpx.Client(timeout=30) as client:
            for _ in range(30):
                assert (
                    client.post(
                        f"{server.url}/invocations",
                        content=PNG,
                        headers={"Content-Type": "image/png"},
                    ).status_code
                    == 200
                )
        text = httpx.get(f"{server.url}/metrics").text
        pids = set(re.findall(r"Started server process \[(\d+)\]", server.log()))
    assert len(pids) >= 2
    assert _metric(text, "boxtune_requests_total", route="/invocations", status="200") == 30
    assert server.process.returncode == 0


def test_a_worker_still_loading_receives_no_requests(tmp_path):
    # One worker is ready at once, the other loads for 6 s: /ping answers 200 as soon as the
    # first one can serve, so every request sent from then on must reach a ready worker.
    server = ServerProcess(
        FAKE,
        "--workers",
        "2",
        log_path=tmp_path / "log",
        env={
            "BOXTUNE_FAKE_LOAD_S": "6",
            "BOXTUNE_FAKE_SLOW_AFTER_FIRST": str(tmp_path / "first-loaded"),
        },
    )
    with server:
        server.wait_ready(timeout=60)
        statuses = [_post(server.url).status_code for _ in range(20)]  # a new connection each
        pings = [httpx.get(f"{server.url}/ping", timeout=30).status_code for _ in range(10)]
    assert statuses == [200] * 20
    assert pings == [200] * 10


def test_runner_failure_is_a_json_500_and_the_server_lives_on(tmp_path):
    server = ServerProcess("py:serve_fakes:make_failing_runner", log_path=tmp_path / "log")
    with server:
        server.wait_ready()
        response = _post(server.url)
        assert response.status_code == 500
        assert set(response.json()) == {"error", "hint"}
        assert "Traceback" not in response.text and "boom" not in response.text
        assert httpx.get(f"{server.url}/ping").status_code == 200
        assert _post(server.url).status_code == 500
    assert "inference failed" in server.log() and "boom" in server.log()  # the log has it all
    assert "Exception in ASGI application" not in server.log()  # handled, not escaped


def test_background_load_failure_stops_the_server(tmp_path):
    # The model loads after the port is bound (/ping: 503 meanwhile); failing to load ends the
    # process with the reason instead of answering 503 forever.
    server = ServerProcess("py:serve_fakes:make_broken_runner", log_path=tmp_path / "log")
    result = subprocess.run(
        server.command, env=server.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "model failed to load: fake.safetensors: weights file is corrupt" in result.stderr
    assert result.stderr.rstrip().endswith(
        "error: fake.safetensors: weights file is corrupt\nhint: re-export it"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/no/such/artifact", "no model artifact at /no/such/artifact"),
        ("./missing/model.tar.gz", "no model artifact"),
        ("py:serve_fakes:no_such_function", "cannot import serve_fakes:no_such_function"),
    ],
)
def test_bad_model_reference_fails_before_serving(tmp_path, model, message):
    server = ServerProcess(model, log_path=tmp_path / "log")
    result = subprocess.run(
        server.command, env=server.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "boxtune.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for option in (
        "--model",
        "--host",
        "--port",
        "--backend",
        "--workers",
        "--max-batch-size",
        "--max-batch-delay-ms",
        "--max-body-bytes",
        "--score-threshold",
    ):
        assert option in result.stdout


def test_container_style_environment_defaults(monkeypatch):
    from boxtune.cli import build_parser

    monkeypatch.setenv("BOXTUNE_MODEL", "/opt/ml/model")
    monkeypatch.setenv("BOXTUNE_HOST", "0.0.0.0")
    monkeypatch.setenv("BOXTUNE_PORT", "8081")
    monkeypatch.setenv("BOXTUNE_WORKERS", "3")
    args = build_parser().parse_args(["serve"])
    assert (args.model, args.host, args.port, args.workers) == ("/opt/ml/model", "0.0.0.0", 8081, 3)
    monkeypatch.delenv("BOXTUNE_MODEL")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve"])

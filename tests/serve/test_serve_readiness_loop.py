"""No false readiness: with several workers, the first 200 from /ping means every worker
serves. Each run starts a server on the real default model, fires a burst of requests over
fresh connections (spread over the workers by the kernel) the moment /ping first answers 200,
and expects 200 from every one; 8 runs in a row per worker count (20 found no failure in
400 requests; benchmarks/serve_soak.py is the long run)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_fakes import encode, scene
from serve_process import ServerProcess

RUNS = 8
JPEG = encode(scene(160, 120, {0: (10, 10, 60, 50)}, seed=4), "JPEG", quality=90)
ANSWER_KEYS = {"normalized_boxes", "classes", "scores", "labels"}


def first_ready(server: ServerProcess, timeout: float = 120.0) -> None:
    """Return the moment /ping first answers 200 (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/ping", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"not ready after {timeout} s:\n{server.log()}")


def invoke(url: str) -> tuple[int, dict | str]:
    # No shared client: a new connection per request, so the burst reaches every worker.
    response = httpx.post(
        f"{url}/invocations",
        content=JPEG,
        headers={"Content-Type": "application/x-image", "Accept": "application/json;verbose"},
        timeout=60,
    )
    body = response.json() if response.status_code == 200 else response.text
    return response.status_code, body


@pytest.mark.parametrize("workers", [2, 3])
def test_requests_right_after_the_first_ping_200_all_succeed(real_artifact, workers, tmp_path):
    failures = []
    burst = 4 * workers
    with ThreadPoolExecutor(max_workers=burst) as pool:
        for run in range(RUNS):
            server = ServerProcess(
                str(real_artifact),
                "--workers",
                str(workers),
                log_path=tmp_path / f"server-{run}.log",
            )
            with server:
                first_ready(server)
                answers = list(pool.map(invoke, [server.url] * burst))
                code = server.terminate()
            for status, body in answers:
                if status != 200:
                    failures.append(f"run {run}: {status} {body}")
                else:
                    assert set(body) >= ANSWER_KEYS, f"run {run}: {body}"
            assert code == 0, f"run {run}: exit {code}\n{server.log()}"
            assert "Traceback" not in server.log(), server.log()
    assert not failures, f"{len(failures)} of {RUNS * burst} requests failed:\n" + "\n".join(
        failures[:10]
    )

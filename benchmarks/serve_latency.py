"""Serving latency, throughput and accuracy of the default model per runtime; prints one JSON.

Measured in one run, on the same images:
- torch eager, ONNX Runtime fp32 and ONNX Runtime int8 (``boxtune export --quantize int8``):
  p50/p95 latency of one image in process, and through ``boxtune serve --backend X`` the
  p50/p95 latency and img/s at concurrency 1 and 8 (dynamic batching on);
- HTTP overhead: the same requests through HTTP vs the InProcessPredictor, fp32, p50
  (target <= 10 %), and the HTTP path alone (an instant runner);
- mAP and mAP50 of fp32 vs int8 on a held-out test set (target: int8 mAP50 within 0.01 of fp32,
  int8 >= 1.6x fp32 throughput).

The model is trained here (the demo's schedule on the generated sample dataset, 320 px) unless
``--artifact`` and ``--test-data`` name an existing one; the int8 model is calibrated on the
training images.

    .venv/bin/python benchmarks/serve_latency.py [--epochs 20] [--requests 64]
    .venv/bin/python benchmarks/serve_latency.py --artifact runs/x --test-data data/test \
        --calibration-data data/train
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

DEFAULT_MODEL_ID = "pytorch-od1-efficientdet-lite0-320"


def make_images(count: int, seed: int = 0) -> list[bytes]:
    """Photo-sized JPEGs with some structure (smooth gradients plus rectangles)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        h, w = 480, 640
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 255 // (w + h))], -1)
        image = base.astype(np.uint8)
        for _ in range(4):
            x0, y0 = rng.integers(0, w - 100), rng.integers(0, h - 100)
            image[y0 : y0 + rng.integers(30, 100), x0 : x0 + rng.integers(30, 100)] = rng.integers(
                0, 255, 3
            )
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def train_artifact(directory: Path, epochs: int, images: int) -> tuple[Path, Path, Path]:
    """The default model fine-tuned on the sample dataset: (artifact, train dir, test dir)."""
    from boxtune.data import generate_sample_dataset
    from boxtune.demo import DEFAULT_TEST_IMAGES, DEMO_HYPERPARAMETERS
    from boxtune.sdk import Estimator, hyperparameters

    train_dir = generate_sample_dataset(directory / "train", images=images, seed=0)
    test_dir = generate_sample_dataset(directory / "test", images=DEFAULT_TEST_IMAGES, seed=1000)
    hp = hyperparameters.retrieve_default(model_id=DEFAULT_MODEL_ID, model_version="*")
    hp.update(DEMO_HYPERPARAMETERS)
    hp["epochs"] = str(epochs)
    estimator = Estimator(
        model_id=DEFAULT_MODEL_ID, hyperparameters=hp, output_path=str(directory / "models")
    )
    estimator.fit({"training": str(train_dir)}, logs=False)
    return Path(estimator.model_data), train_dir, test_dir


def quantize(artifact: Path, calibration: Path, target: Path) -> Path:
    """``boxtune export --quantize int8``: an artifact holding model.onnx and model.int8.onnx."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "boxtune.cli",
            "export",
            "--model",
            str(artifact),
            "--quantize",
            "int8",
            "--calibration-data",
            str(calibration),
            "--output",
            str(target),
        ],
        check=True,
    )
    return target


def mean_average_precision(artifact: Path, backend: str, test_dir: Path, tmp: Path) -> dict:
    from boxtune.data import read_dataset
    from boxtune.evaluate import evaluate_model
    from boxtune.model_ref import open_runner

    runner = open_runner(str(artifact), backend).runner
    result = evaluate_model(runner, read_dataset(test_dir), tmp / f"eval-{backend}", progress=False)
    return {"map": round(result.map, 4), "map50": round(result.map50, 4)}


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "n": len(seconds),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A runner that answers instantly: served, it shows the cost of the HTTP path alone.
INSTANT_RUNNER = """
from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.labels import LabelMap


class InstantRunner(Runner):
    image_size = 320
    label_map = LabelMap((1,), ("thing",))
    backend = "instant"

    def predict(self, images):
        return [Detections.empty() for _ in images]


def make_runner(backend):
    return InstantRunner()
"""


class Server:
    def __init__(self, artifact: Path | str, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "boxtune.cli",
            "serve",
            "--model",
            str(artifact),
            "--port",
            str(self.port),
            "--no-access-log",
            *args,
        ]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode(errors="replace"))
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not become ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log.close()


# Pause between timed calls: ONNX Runtime's and OpenMP's worker threads keep spinning for a
# while after a call and would steal the CPU from the next (other) call being timed.
PAUSE_S = 0.05


def interleaved(calls: dict, items: list, rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time every call on every item, alternating calls item by item (and their order round by
    round) so that load from other processes hits all of them alike."""
    for item in items[:warmup]:
        for fn in calls.values():
            fn(item)
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for item in items:
            for name in order:
                time.sleep(PAUSE_S)
                started = time.perf_counter()
                calls[name](item)
                times[name].append(time.perf_counter() - started)
    return times


def http_call(client: httpx.Client, url: str):
    def call(body: bytes) -> None:
        response = client.post(
            f"{url}/invocations", content=body, headers={"Content-Type": "application/x-image"}
        )
        response.raise_for_status()
        response.json()

    return call


def http_plumbing(images: list[bytes], rounds: int, tmp: Path) -> dict:
    """p50 of the same requests with an instant runner, through HTTP and in-process."""
    from boxtune.serve.predictor import InProcessPredictor

    (tmp / "boxtune_instant_runner.py").write_text(INSTANT_RUNNER)
    sys.path.insert(0, str(tmp))
    import boxtune_instant_runner

    in_process = InProcessPredictor(boxtune_instant_runner.make_runner("none"))
    python_path = os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH")) if p)
    server = Server("py:boxtune_instant_runner:make_runner", env={"PYTHONPATH": python_path})
    try:
        with httpx.Client(timeout=60) as client:
            times = interleaved(
                {"in_process": in_process.predict_bytes, "http": http_call(client, server.url)},
                images,
                rounds,
            )
    finally:
        server.stop()
    local, remote = percentiles(times["in_process"]), percentiles(times["http"])
    return {
        "in_process_p50_ms": local["p50_ms"],
        "http_p50_ms": remote["p50_ms"],
        "http_plumbing_p50_ms": round(remote["p50_ms"] - local["p50_ms"], 2),
    }


def http_load(url: str, images: list[bytes], total: int, concurrency: int) -> dict:
    """img/s and per-request latency of ``total`` requests from ``concurrency`` keep-alive
    clients."""
    local = threading.local()

    def call(index: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=120)
        started = time.perf_counter()
        response = local.client.post(
            f"{url}/invocations",
            content=images[index % len(images)],
            headers={"Content-Type": "application/x-image"},
        )
        response.raise_for_status()
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, range(concurrency * 2)))  # warm-up: every client connected
        started = time.perf_counter()
        latencies = list(pool.map(call, range(total)))
        elapsed = time.perf_counter() - started
    return {"images_per_s": round(total / elapsed, 2), "latency": percentiles(latencies)}


def served(artifact: Path, backend: str, images: list[bytes], total: int, repeats: int) -> dict:
    """Concurrency 1 and 8 against ``boxtune serve --backend``; the best of ``repeats``
    (the run least disturbed by other processes)."""
    server = Server(artifact, "--backend", backend, "--max-batch-size", "8")
    try:
        result = {}
        for concurrency in (1, 8):
            count = total if concurrency > 1 else max(total // 2, 8)
            runs = [http_load(server.url, images, count, concurrency) for _ in range(repeats)]
            result[f"concurrency_{concurrency}"] = max(runs, key=lambda r: r["images_per_s"])
    finally:
        server.stop()
    return result


BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="an existing artifact (default: train one)")
    parser.add_argument("--test-data", help="held-out dataset for mAP (with --artifact)")
    parser.add_argument("--calibration-data", help="images for int8 calibration (--artifact)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-images", type=int, default=160)
    parser.add_argument("--images", type=int, default=10, help="distinct request images")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the images")
    parser.add_argument("--torch-images", type=int, default=5, help="torch eager is slow")
    parser.add_argument("--requests", type=int, default=64, help="per throughput run")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.artifact and not (args.test_data and args.calibration_data):
        parser.error("--artifact needs --test-data and --calibration-data")

    from boxtune.serve.predictor import InProcessPredictor

    load_at_start = round(os.getloadavg()[0], 2)  # other processes on the machine skew timings
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.artifact:
            trained = Path(args.artifact)
            calibration, test_dir = Path(args.calibration_data), Path(args.test_data)
        else:
            started = time.perf_counter()
            trained, calibration, test_dir = train_artifact(tmp, args.epochs, args.train_images)
            print(f"trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        artifact = quantize(trained, calibration, tmp / "int8-artifact")
        images = make_images(args.images)
        predictors = {b: InProcessPredictor.load(str(artifact), backend=b) for b in BACKENDS}
        pixels = [predictors["onnxruntime"].decode(body).pixels for body in images]

        in_process = interleaved(
            {b: (lambda p, b=b: predictors[b].predict_arrays([p])) for b in BACKENDS},
            pixels[: args.torch_images],
            args.rounds,
            warmup=1,
        )
        server = Server(artifact, "--backend", "onnxruntime")
        try:
            with httpx.Client(timeout=60) as client:
                overhead_times = interleaved(
                    {
                        "in_process": predictors["onnxruntime"].predict_bytes,
                        "http": http_call(client, server.url),
                    },
                    images,
                    args.rounds,
                )
        finally:
            server.stop()
        plumbing = http_plumbing(images, args.rounds, tmp)
        over_http = {b: served(artifact, b, images, args.requests, args.repeats) for b in BACKENDS}
        accuracy = {
            b: mean_average_precision(artifact, b, test_dir, tmp)
            for b in ("onnxruntime", "onnxruntime-int8")
        }

    local, remote = percentiles(overhead_times["in_process"]), percentiles(overhead_times["http"])
    overhead = remote["p50_ms"] / local["p50_ms"] - 1

    def rate(backend: str, concurrency: int) -> float:
        return over_http[backend][f"concurrency_{concurrency}"]["images_per_s"]

    int8_speedup = {
        c: round(rate("onnxruntime-int8", c) / rate("onnxruntime", c), 3) for c in (1, 8)
    }
    map50_change = accuracy["onnxruntime-int8"]["map50"] - accuracy["onnxruntime"]["map50"]
    result = {
        "benchmark": "serve_latency",
        "model_id": DEFAULT_MODEL_ID,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_start": load_at_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "images": f"{args.images} JPEG 640x480",
        "in_process_one_image": {b: percentiles(in_process[b]) for b in BACKENDS},
        "http": over_http,
        "http_overhead_fp32": {
            "in_process_predictor": local,
            "http_concurrency_1": remote,
            "http_p50_overhead": round(overhead, 4),
            "http_p50_overhead_ms": round(remote["p50_ms"] - local["p50_ms"], 2),
            "same_requests_with_an_instant_runner": plumbing,
            "target_max": 0.10,
            "meets_target": overhead <= 0.10,
        },
        "int8": {
            "throughput_speedup_vs_fp32": int8_speedup,
            "in_process_p50_speedup_vs_fp32": round(
                percentiles(in_process["onnxruntime"])["p50_ms"]
                / percentiles(in_process["onnxruntime-int8"])["p50_ms"],
                3,
            ),
            "accuracy_on_held_out": accuracy,
            "map50_change": round(map50_change, 4),
            "targets": {"speedup_min": 1.6, "map50_change_max": 0.01},
            "meets_targets": min(int8_speedup.values()) >= 1.6 and abs(map50_change) <= 0.01,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

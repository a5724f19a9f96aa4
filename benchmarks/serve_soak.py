"""Soak: ``boxtune serve --workers 2`` under 16 concurrent clients for 10 minutes; prints the
RSS of the whole process tree every minute and one JSON object at the end.

Passes when there are no errors and the RSS after warm-up stays flat (growth under 5 % from
the first sample after warm-up to the last). Not run in CI.

    .venv/bin/python benchmarks/serve_soak.py [--artifact DIR] [--duration-s 600] [--sample-s 60]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import DEFAULT_MODEL_ID, Server, percentiles


def build_artifact(directory: Path) -> Path:
    """The default model with a new, untrained head: serving cost does not depend on training."""
    from boxtune.artifacts import write_artifact
    from boxtune.catalog import get_spec
    from boxtune.engines import get_engine
    from boxtune.labels import LabelMap

    label_map = LabelMap((1, 2), ("cat", "dog"))
    detector = get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), label_map)
    return write_artifact(detector, directory / "model", model_id=DEFAULT_MODEL_ID)


def varied_images(seed: int = 0) -> list[bytes]:
    """JPEGs and PNGs from 160x120 to 3000x2000: small, photo-sized and large decodes."""
    rng = np.random.default_rng(seed)
    images = []
    for index, (w, h) in enumerate([(160, 120), (640, 480), (1280, 720), (3000, 2000)] * 3):
        pixels = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "PNG" if index % 3 == 2 else "JPEG", quality=85)
        images.append(buffer.getvalue())
    return images


def tree_rss_mb(root: int) -> dict[int, float]:
    """RSS of ``root`` and its descendants (from /proc), in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    rss: dict[int, float] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
        pending += children.get(pid, [])
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="an existing artifact (default: build one)")
    parser.add_argument("--duration-s", type=float, default=600)
    parser.add_argument("--sample-s", type=float, default=60)
    parser.add_argument("--warmup-samples", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(args.artifact) if args.artifact else build_artifact(Path(tmp))
        server = Server(artifact, "--workers", str(args.workers))
        images = varied_images()
        stop = threading.Event()
        lock = threading.Lock()
        statuses: Counter[str] = Counter()
        latencies: list[float] = []

        def client(index: int) -> None:
            with httpx.Client(timeout=120) as http:
                count = index
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        response = http.post(
                            f"{server.url}/invocations",
                            content=images[count % len(images)],
                            headers={"Content-Type": "application/x-image"},
                        )
                        outcome = str(response.status_code)
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                    with lock:
                        statuses[outcome] += 1
                        if outcome == "200":
                            latencies.append(time.perf_counter() - started)
                    count += 1

        samples = []
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                for index in range(args.concurrency):
                    pool.submit(client, index)
                try:
                    while (elapsed := time.monotonic() - started) < args.duration_s:
                        time.sleep(min(args.sample_s, args.duration_s - elapsed))
                        rss = tree_rss_mb(server.process.pid)
                        with lock:
                            done = sum(statuses.values())
                        sample = {
                            "t_s": round(time.monotonic() - started),
                            "rss_mb": round(sum(rss.values()), 1),
                            "rss_mb_per_process": [round(v, 1) for v in rss.values()],
                            "requests": done,
                        }
                        samples.append(sample)
                        print(json.dumps(sample), file=sys.stderr, flush=True)
                finally:  # before the pool waits for its clients: they stop on it
                    stop.set()
        finally:
            stop.set()
            server.stop()
        elapsed = time.monotonic() - started

    steady = samples[args.warmup_samples :] or samples
    first, last = steady[0]["rss_mb"], steady[-1]["rss_mb"]
    growth = last - first
    errors = {status: n for status, n in statuses.items() if status != "200"}
    result = {
        "benchmark": "serve_soak",
        "model_id": DEFAULT_MODEL_ID,
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "duration_s": round(elapsed, 1),
        "requests": sum(statuses.values()),
        "errors": errors,
        "images_per_s": round(statuses["200"] / elapsed, 2),
        "latency": percentiles(latencies) if latencies else None,
        "rss_samples": samples,
        "rss_growth_after_warmup_mb": round(growth, 1),
        "rss_growth_after_warmup_pct": round(100 * growth / first, 2),
        "flat": abs(growth) / first < 0.05,
        "passes": not errors and abs(growth) / first < 0.05,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

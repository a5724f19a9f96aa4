"""`boxtune data fetch pennfudan` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boxtune.cli import main as cli
from boxtune.data.fetch import fetch_pennfudan
from boxtune.errors import DatasetError

BOXES = {1: [(11, 21, 40, 90)], 2: [(5, 6, 30, 70), (50, 10, 90, 75)], 3: []}


def pennfudan_zip(extra_member: str | None = None) -> bytes:
    """A PennFudanPed.zip look-alike: three PNGs, their PASCAL-style annotation files, masks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, boxes in BOXES.items():
            stem = f"FudanPed{n:05d}"
            pixels = np.random.default_rng(n).integers(0, 255, (100, 120, 3), dtype=np.uint8)
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            archive.writestr(f"PennFudanPed/PNGImages/{stem}.png", png.getvalue())
            archive.writestr(f"PennFudanPed/PedMasks/{stem}_mask.png", png.getvalue())
            lines = [
                "# Compatible with PASCAL Annotation Version 1.00",
                f'Image filename : "PennFudanPed/PNGImages/{stem}.png"',
                "Image size (X x Y x C) : 120 x 100 x 3",
            ]
            for k, (x1, y1, x2, y2) in enumerate(boxes, start=1):
                lines.append(
                    f'Bounding box for object {k} "PASpersonWalking" (Xmin, Ymin) - '
                    f"(Xmax, Ymax) : ({x1}, {y1}) - ({x2}, {y2})"
                )
            archive.writestr(f"PennFudanPed/Annotation/{stem}.txt", "\n".join(lines) + "\n")
        archive.writestr("PennFudanPed/readme.txt", "Penn-Fudan Database for Pedestrian")
        if extra_member:
            archive.writestr(extra_member, "x")
    return buffer.getvalue()


class Server:
    """Serves ``body`` at /PennFudanPed.zip; ``lie_about_length`` sends a short body."""

    def __init__(self) -> None:
        self.body = pennfudan_zip()
        self.hits = 0
        self.lie_about_length = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if self.path != "/PennFudanPed.zip":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                extra = 1000 if server.lie_about_length else 0
                self.send_header("Content-Length", str(len(server.body) + extra))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/PennFudanPed.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Server]:
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    s = Server()
    yield s
    s.close()


def test_download_verifies_sha256_converts_and_reuses_the_cache(
    server: Server, tmp_path: Path
) -> None:
    digest = hashlib.sha256(server.body).hexdigest()
    notes: list[str] = []
    ds = fetch_pennfudan(tmp_path / "out", url=server.url, sha256=digest, log=notes.append)
    assert ds.categories == {1: "person"} and len(ds) == 3
    assert [a.bbox for a in ds.boxes_for(1)] == [(10.0, 20.0, 40.0, 90.0)]  # 1-based -> corners
    assert len(ds.boxes_for(2)) == 2 and ds.boxes_for(3) == []
    assert any(f"sha256 {digest}" in n for n in notes)
    assert server.hits == 1
    fetch_pennfudan(tmp_path / "again", url=server.url, sha256=digest, log=notes.append)
    assert server.hits == 1  # served from BOXTUNE_HOME
    assert any("using cached" in n for n in notes)


def test_sha256_mismatch_is_refused_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        fetch_pennfudan(tmp_path / "out", url=server.url, sha256="ab" * 32, log=lambda _: None)
    text = str(info.value)
    assert "sha256 mismatch" in text and "ab" * 32 in text
    assert hashlib.sha256(server.body).hexdigest() in text
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "home").rglob("*.zip"))


def test_first_download_hash_is_recorded_and_enforced(server: Server, tmp_path: Path) -> None:
    fetch_pennfudan(tmp_path / "out", url=server.url, log=lambda _: None)
    cached = next((tmp_path / "home").rglob("PennFudanPed.zip"))
    cached.write_bytes(cached.read_bytes()[:-10])  # corrupted on disk
    notes: list[str] = []
    fetch_pennfudan(tmp_path / "out2", url=server.url, log=notes.append)
    assert any("does not match" in n for n in notes) and server.hits == 2


def test_truncated_download_is_an_error(server: Server, tmp_path: Path) -> None:
    server.lie_about_length = True
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"cannot download|incomplete"):
        fetch_pennfudan(tmp_path / "out", url=server.url, log=lambda _: None)
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "out").exists()


def test_offline_fails_fast_naming_the_url_and_from_zip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/PennFudanPed.zip"
    start = time.perf_counter()
    with pytest.raises(DatasetError) as info:
        fetch_pennfudan(tmp_path / "out", url=url, log=lambda _: None)
    assert time.perf_counter() - start < 5
    assert url in str(info.value) and "--from-zip" in str(info.value)


def test_from_zip_and_zip_slip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    good = tmp_path / "PennFudanPed.zip"
    good.write_bytes(pennfudan_zip())
    assert cli(["data", "fetch", "pennfudan", str(tmp_path / "out"), "--from-zip", str(good)]) == 0
    evil = tmp_path / "evil.zip"
    evil.write_bytes(pennfudan_zip(extra_member="../../escaped.txt"))
    with pytest.raises(DatasetError, match="outside"):
        fetch_pennfudan(tmp_path / "out2", from_zip=evil, log=lambda _: None)
    assert not list(tmp_path.rglob("escaped.txt"))
    with pytest.raises(DatasetError, match="zip file not found"):
        fetch_pennfudan(tmp_path / "out3", from_zip=tmp_path / "nope.zip", log=lambda _: None)

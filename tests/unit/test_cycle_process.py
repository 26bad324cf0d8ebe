"""Server mode: cycles run in a child process whose snapshots the server process serves.

Against the replay slurmrestd (benchmarks/replay.py) on a small generated cluster: the
snapshots that come back are complete and exact, a killed child is replaced while the
last snapshot stays served, and stopping leaves no child behind. Also update_time: once
a full answer is in hand, unchanged answers (304 for /nodes, "No job changes" for /jobs)
keep the last data, never zeros.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import generate, replay
from benchmarks.expect import differences
from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.settings import load_settings

KEY = b"cycle-process-test-key-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("cluster")
    generate.generate(data, 300, 30, ["v0.0.45"], seed=3)
    key = data / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    server, _ = replay.start(data, KEY)
    yield replay.url_of(server), data
    server.shutdown()


def _collection(url: str, data: Path, *extra: str) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", url, "--jwt-key-file", str(data / "jwt.key"), "--jwt-user",
         "bench", "--log-level", "warning", *extra]
    )
    tokens = MintedToken(data / "jwt.key", "bench", 1800)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens)


def _workers() -> list[int]:
    """Collection processes started by this test process."""
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "exporter.cycle import"],
                         capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _wait(predicate: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_cycles_run_in_a_child_and_snapshots_come_back(cluster: tuple[str, Path]) -> None:
    url, data = cluster
    truth = json.loads((data / "truth.json").read_text())
    before = set(_workers())
    coll = _collection(url, data, "--interval", "0.2")
    stop = threading.Event()
    loop = threading.Thread(target=coll.run_forever, args=(stop,))
    loop.start()
    try:
        _wait(lambda: coll.snapshot.all_up)
        assert differences(truth, coll.snapshot.exposition.decode()) == []
        children = set(_workers()) - before
        assert len(children) == 1
        first = coll.snapshot.created_at
        _wait(lambda: coll.snapshot.created_at > first)  # the child keeps cycling

        (child,) = children
        os.kill(child, signal.SIGKILL)  # a crash: the last snapshot stays, a new child comes
        served = coll.snapshot
        _wait(lambda: set(_workers()) - before - {child})
        assert coll.snapshot.created_at >= served.created_at
        _wait(lambda: coll.snapshot.created_at > served.created_at)
        assert differences(truth, coll.snapshot.exposition.decode()) == []
    finally:
        stop.set()
        loop.join(30)
        coll.close()
    assert not loop.is_alive()
    _wait(lambda: not set(_workers()) - before, 10)


def test_unchanged_answers_keep_the_last_data(cluster: tuple[str, Path]) -> None:
    url, data = cluster
    truth = json.loads((data / "truth.json").read_text())
    coll = _collection(url, data)
    try:
        first = coll.run_once()  # full answers; their last_update is remembered
        assert first.all_up and differences(truth, first.exposition.decode()) == []
        for _ in range(3):  # asked with update_time: 304 for nodes, no jobs + warning
            snap = coll.run_once()
            assert snap.all_up
            assert differences(truth, snap.exposition.decode()) == []
    finally:
        coll.close()
    recent = _recent(url)
    assert any("/nodes/?update_time=" in r["path"] and r["status"] == 304 for r in recent)
    assert any("/jobs/?update_time=" in r["path"] and r["status"] == 200 for r in recent)


def _recent(url: str) -> list[dict[str, object]]:
    import http.client

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    conn.request("GET", "/-/replay/stats")
    recent: list[dict[str, object]] = json.loads(conn.getresponse().read())["recent"]
    conn.close()
    return recent

"""Server mode: cycles run in a child process whose snapshots the server process serves.

Against the replay slurmrestd (benchmarks/replay.py) on a small generated cluster: the
snapshots that come back are complete and exact, a killed child is replaced while the
last snapshot stays served, and stopping leaves no child behind. Also update_time: once
a full answer is in hand, unchanged answers (304 for /nodes, "No job changes" for /jobs)
keep the last data, never zeros.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import generate, replay
from benchmarks.expect import differences
from exporter import pipe
from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection, Snapshot
from exporter.settings import Settings, load_settings
from exporter.worker import CollectionProcess, stall_bound

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


def _settings(url: str, data: Path, *extra: str) -> Settings:
    return load_settings(
        ["--slurmrestd-url", url, "--jwt-key-file", str(data / "jwt.key"), "--jwt-user",
         "bench", "--log-level", "warning", *extra]
    )


def _collection(url: str, data: Path, *extra: str) -> Collection:
    settings = _settings(url, data, *extra)
    tokens = MintedToken(data / "jwt.key", "bench", 1800)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens)


def _workers() -> list[int]:
    """Collection processes started by this test process."""
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "exporter.worker import"],
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
    coll = CollectionProcess(_settings(url, data, "--interval", "0.2"))
    stop = threading.Event()
    loop = threading.Thread(target=coll.run, args=(stop,))
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
        assert b'slurm_exporter_collection_process_restarts_total{reason="exited"} 1.0' in (
            coll.snapshot.exposition)
    finally:
        stop.set()
        loop.join(30)
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


def _serve(coll: CollectionProcess) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    loop = threading.Thread(target=coll.run, args=(stop,))
    loop.start()
    return stop, loop


def test_a_module_in_the_working_directory_is_never_imported_by_the_collection_process(
    cluster: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child holds the key: a gzip.py (a module it imports) left in the directory the
    exporter was started from, or named by PYTHONPATH, must not run in it."""
    url, data = cluster
    marker = tmp_path / "imported"
    trap = tmp_path / "cwd"
    trap.mkdir()
    for name in ("gzip", "msgspec"):
        (trap / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}\\n')\n")
    monkeypatch.chdir(trap)
    monkeypatch.setenv("PYTHONPATH", str(trap))
    before = set(_workers())
    coll = CollectionProcess(_settings(url, data, "--interval", "0.2"))
    stop, loop = _serve(coll)
    try:
        _wait(lambda: coll.snapshot.all_up or marker.exists())
        assert len(set(_workers()) - before) == 1
    finally:
        stop.set()
        loop.join(30)
    assert not marker.exists(), marker.read_text()


def test_the_server_process_builds_no_client_and_no_pool(cluster: tuple[str, Path]) -> None:
    url, data = cluster
    coll = CollectionProcess(_settings(url, data, "--interval", "0.2"))
    stop, loop = _serve(coll)
    try:
        _wait(lambda: coll.snapshot.all_up)
        names = [t.name for t in threading.enumerate()]
        assert not [n for n in names if n.startswith("endpoint")], names
        assert not hasattr(coll, "_client") and not hasattr(coll, "_pool")
    finally:
        stop.set()
        loop.join(30)


def test_a_stuck_collection_process_is_replaced(cluster: tuple[str, Path]) -> None:
    """No snapshot within the bound (here 2 s): the child is killed and a new one started,
    whose snapshots are served; the last snapshot is served meanwhile."""
    url, data = cluster
    before = set(_workers())
    coll = CollectionProcess(_settings(url, data, "--interval", "0.2"), stall_after=2.0)
    stop, loop = _serve(coll)
    try:
        _wait(lambda: coll.snapshot.all_up)
        (child,) = set(_workers()) - before
        os.kill(child, signal.SIGSTOP)  # hung: alive, silent
        hung = time.monotonic()
        served = coll.snapshot
        _wait(lambda: set(_workers()) - before - {child})
        assert time.monotonic() - hung >= 2.0
        assert child not in _workers()  # killed, not left stopped
        _wait(lambda: coll.snapshot.created_at > served.created_at)
        assert coll.snapshot.all_up
        assert b'slurm_exporter_collection_process_restarts_total{reason="stalled"} 1.0' in (
            coll.snapshot.exposition)
    finally:
        stop.set()
        loop.join(30)
    _wait(lambda: not set(_workers()) - before, 10)


def test_the_stall_bound_follows_interval_and_timeout() -> None:
    settings = load_settings(["--auth", "none", "--interval", "30", "--timeout", "10"])
    assert stall_bound(settings) == 30 + 5 * 10 + 60
    longer = load_settings(["--auth", "none", "--interval", "300", "--timeout", "10"])
    assert stall_bound(longer) - stall_bound(settings) == 270


class _Proc:
    """What the reader uses of a child process: its stdout, and being killed."""

    def __init__(self, out: bytes) -> None:
        self.stdout = io.BytesIO(out)
        self.killed = False

    def kill(self) -> None:
        self.killed = True


class _Evil:
    """A pickle that runs a command when loaded (what the old pipe would have done)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _bad_stream(kind: str, marker: Path) -> bytes:
    evil = pickle.dumps(_Evil(marker))
    return {
        "oversize": struct.pack("!I", pipe.MAX_FRAME + 1) + b"x" * 100,  # never read
        "4GiB": struct.pack("!I", 0xFFFFFFFF),
        "garbled": struct.pack("!I", 10) + b"\x93\x01\x02\x03garbage",
        "short": struct.pack("!I", 50) + b"short",
        "short-length": b"\x00\x00",
        "pickle": evil,
        "framed-pickle": struct.pack("!I", len(evil)) + evil,
    }[kind]


@pytest.mark.parametrize(
    "kind", ["oversize", "4GiB", "garbled", "short", "short-length", "pickle", "framed-pickle"]
)
def test_a_bad_frame_drops_the_child_and_never_the_server(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "executed"
    coll = CollectionProcess(load_settings(["--auth", "none"]))
    good = pipe.encode_snapshot(Snapshot(b"# good\n", 5.0, True), b"")
    proc = _Proc(struct.pack("!I", len(good)) + good + _bad_stream(kind, marker))
    coll._read_snapshots(proc)  # type: ignore[arg-type]
    assert proc.killed and coll._bad_frame  # counted as reason="bad_frame" at the restart
    assert coll.snapshot.exposition == b"# good\n"  # the last good one stays served
    assert "bad snapshot from the collection process" in caplog.text
    assert not marker.exists()


def test_snapshots_and_settings_cross_the_pipe_unchanged() -> None:
    from exporter.errors import EndpointFailure

    snap = Snapshot(b"x 1\n", 12.5, False, (("jobs", EndpointFailure("auth", "refused", 401)),))
    back = pipe.decode_snapshot(pipe.encode_snapshot(snap, b"gz"))
    assert (back.exposition, back.created_at, back.all_up, back.gzipped) == (
        b"x 1\n", 12.5, False, b"gz")
    ((endpoint, failure),) = back.failures
    assert (endpoint, failure.reason, failure.message, failure.status) == (
        "jobs", "auth", "refused", 401)
    settings = load_settings(["--auth", "none", "--interval", "7", "--no-collector-diag"])
    assert pipe.decode_start(pipe.encode_start(settings, {"stalled": 2})) == (
        settings, {"stalled": 2})
    with pytest.raises(pipe.FrameError):
        pipe.decode_start(b'{"settings": {"interval": -1}, "restarts": {}}')
    with pytest.raises(pipe.FrameError):
        pipe.decode_snapshot(pipe.encode_snapshot(snap, b"")[:-3])

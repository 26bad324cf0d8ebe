"""Soak: 2,000 collection cycles against the replay slurmrestd with faults at random.

The replay server (benchmarks/replay.py) runs as its own process, so what is measured
here is the exporter alone: the collection loop (interval 0) and its /metrics server,
scraped every 50 cycles. slurmrestd is also killed and restarted twice on the same
port. Checked: no cycle raises, every fault reason shows up, the last cycle (faults
off) is all up, and RSS, threads and file descriptors stay flat.

    python3 -m pytest tests/unit/test_soak.py -s     # prints the figures
    SOAK_CYCLES=10000 python3 -m pytest tests/unit/test_soak.py -s
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import generate
from exporter.auth import token_source_from_settings
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.server import make_app, serve
from exporter.settings import load_settings

TOP = Path(__file__).resolve().parents[2]
KEY = b"soak-test-key-soak-test-key-soak"
CYCLES = int(os.environ.get("SOAK_CYCLES", "2000"))
WARMUP = CYCLES // 10
SAMPLE_EVERY = 50
PAGE = os.sysconf("SC_PAGE_SIZE")

# about 1 request in 8 goes wrong, in every way the replay server can do it
FAULTS = [
    {"status": 500, "body": "", "probability": 0.015},
    {"status": 502, "body": "<html>Bad Gateway</html>", "probability": 0.015},
    {"status": 503, "probability": 0.015},
    {"status": 511, "probability": 0.01},
    {"status": 401, "body": "Authentication failure", "probability": 0.01},
    {"path": "/slurm/", "status": 404, "probability": 0.005},
    {"path": "/slurm/", "status": 200, "body": "<html>garbage</html>", "probability": 0.015},
    {"path": "/slurm/", "status": 200, "body": "", "probability": 0.01},
    {"path": "/slurm/", "status": 200, "probability": 0.01,
     "body": '{"errors": [{"error_number": 1001, "error": "Unable to contact slurm '
             'controller (connect failure)"}], "warnings": []}'},
    {"drop": True, "probability": 0.01},
    {"path": "/slurm/", "truncate": 0.5, "probability": 0.015},
    {"path": "/slurm/", "delay": 0.25, "probability": 0.003},  # beyond --timeout 0.1
]


def rss() -> int:
    """Resident memory, after glibc hands back what it holds free (so that the figure is
    what the process keeps, not how fragmented its arenas happen to be)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


# benchmarks.replay with TCP_NODELAY: it writes the head and the body separately, and
# Nagle's algorithm against delayed ACKs costs 40 ms per small answer on loopback.
_NODELAY = (
    "import sys; from benchmarks import replay; "
    "replay.Handler.disable_nagle_algorithm = True; sys.exit(replay.main(sys.argv[1:]))"
)


class Replay:
    """benchmarks/replay.py as a process; stop() and start() keep the port."""

    def __init__(self, data: Path, key_file: Path) -> None:
        self.data, self.key_file = data, key_file
        self.listen = "127.0.0.1:0"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.starts = 0  # a new seed each time: the faults must not repeat

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _NODELAY, "--data", str(self.data),
             "--jwt-key-file", str(self.key_file), "--listen", self.listen,
             "--seed", str(6 + self.starts),
             "--stdin-stop"],
            cwd=TOP, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.starts += 1
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once it listens
        assert line.startswith("URL="), line
        self.url = line.strip().removeprefix("URL=")
        self.listen = self.url.removeprefix("http://")
        r = httpx.post(self.url + "/-/replay/faults", content=json.dumps(FAULTS))
        assert r.status_code == 200, r.text

    def clear_faults(self) -> None:
        assert httpx.delete(self.url + "/-/replay/faults").status_code == 200

    def stop(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Replay]:
    data = tmp_path / "data"
    generate.generate(data, 40, 10, ["v0.0.45"], seed=3)
    key_file = tmp_path / "jwt.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    r = Replay(data, key_file)
    r.start()
    yield r
    r.stop()


def test_soak_with_random_faults(replay: Replay) -> None:
    settings = load_settings(
        ["--slurmrestd-url", replay.url, "--jwt-key-file", str(replay.key_file),
         "--jwt-user", "soak", "--jwt-lifespan", "20", "--timeout", "0.1",
         "--nodes-per-node", "--collector-shares-interval", "30"]  # every endpoint, every cycle
    )
    # logs go where they would go (a stream), not into pytest's capture, which keeps
    # every record and would grow the RSS measured here
    log = logging.getLogger("exporter")
    sink = open(os.devnull, "w")  # noqa: SIM115
    handler = logging.StreamHandler(sink)
    log.addHandler(handler)
    log.propagate = False
    tokens = token_source_from_settings(settings)
    coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    httpd, _ = serve("127.0.0.1", 0, make_app(lambda: coll.snapshot, "/metrics", replay.url))
    scrape_url = f"http://127.0.0.1:{httpd.server_port}/metrics"
    restarts = {CYCLES * 2 // 5, CYCLES * 3 // 4}
    xs: list[float] = []
    mem: list[float] = []
    blocks: list[float] = []  # Python objects alive (pymalloc blocks): a leak of any object
    fd_counts: list[int] = []
    thread_counts: list[int] = []
    all_up = 0
    t0 = time.monotonic()
    try:
        for cycle in range(1, CYCLES + 1):
            if cycle in restarts:  # slurmrestd killed, one cycle without it, restarted
                replay.stop()
                assert not coll.run_once().all_up
                replay.start()
            snap = coll.run_once()  # must never raise
            all_up += snap.all_up
            if cycle % SAMPLE_EVERY == 0:
                gc.collect()
                if cycle > WARMUP:
                    xs.append(cycle)
                    mem.append(rss())
                    blocks.append(sys.getallocatedblocks())
                    fd_counts.append(fds())
                    thread_counts.append(threads())
                r = httpx.get(scrape_url)  # a new connection each time
                assert r.status_code == 200 and b"slurm_exporter_endpoint_up" in r.content
        wall = time.monotonic() - t0
        replay.clear_faults()
        last = coll.run_once()
        if not last.all_up:  # a 404 in the last faulty cycle: versions are rediscovered
            last = coll.run_once()
        assert last.all_up, last.failures
        errors: dict[str, float] = {}
        renewals = 0.0
        for fam in text_string_to_metric_families(last.exposition.decode()):
            for s in fam.samples:
                if s.name == "slurm_exporter_endpoint_errors_total":
                    reason = s.labels["reason"]
                    errors[reason] = errors.get(reason, 0) + s.value
                if s.name == "slurm_exporter_token_renewals_total":
                    renewals += s.value if s.labels["result"] == "success" else 0
        stats = httpx.get(replay.url + "/-/replay/stats").json()["requests"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        coll.close()
        log.removeHandler(handler)
        log.propagate = True
        sink.close()

    growth = slope(xs, mem)  # bytes per cycle
    objects = slope(xs, blocks)  # Python heap blocks per cycle
    report = (
        f"soak: {CYCLES} cycles in {wall:.1f} s ({wall / CYCLES * 1000:.1f} ms/cycle), "
        f"{all_up} all up; RSS {mem[0] / 2**20:.1f} -> {mem[-1] / 2**20:.1f} MiB, "
        f"slope {growth:.1f} B/cycle ({growth * 1000 / 1024:.1f} KiB per 1000 cycles); "
        f"Python heap {blocks[0]:.0f} -> {blocks[-1]:.0f} blocks, slope {objects:.3f}/cycle; "
        f"fds {min(fd_counts)}-{max(fd_counts)}; threads {min(thread_counts)}-"
        f"{max(thread_counts)}; errors by reason {dict(sorted(errors.items()))}; "
        f"{renewals:.0f} token renewals"
    )
    print("\n" + report + f"\nreplay: {stats}")
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_text(
            report + "\n" + " ".join(f"{int(x)}:{m / 2**20:.2f}" for x, m in zip(xs, mem,
                                                                              strict=True))
            + "\n"
        )
    # every reason was exercised (a refused token is renewed and the call retried at
    # once, so refusals show as renewals, far more than a 20 s lifespan needs)
    assert all(errors[r] > 0 for r in ("connect", "timeout", "not_found", "http_error",
                                       "decode", "slurm_error")), (errors, stats)
    assert renewals > wall / 13 + 10, renewals
    assert all_up > CYCLES // 4
    # flat: no fd or thread leaks, no Python object kept per cycle (a leak of one object
    # a cycle is a slope of 1), and RSS about flat (glibc's arenas grow in steps at first)
    # (the pool keeps up to one connection per endpoint open: 0 to 5 of them at a time)
    # (so over 2,000 cycles a leak of even one fd per 400 cycles breaks this bound)
    assert max(fd_counts) - min(fd_counts) <= len(settings.enabled_endpoints()), fd_counts
    assert max(thread_counts) == min(thread_counts), thread_counts
    assert abs(objects) < 1, report
    assert growth < 4096, report
    assert mem[-1] - mem[0] < 12 * 2**20, report
    assert threading.active_count() < 20


def _proc_stats(pid: int) -> tuple[int, int, int]:
    """(RSS bytes, open fds, threads) of a process, from /proc."""
    with open(f"/proc/{pid}/statm") as f:
        rss_pages = int(f.read().split()[1])
    return rss_pages * PAGE, len(os.listdir(f"/proc/{pid}/fd")), len(
        os.listdir(f"/proc/{pid}/task"))


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        # a request thread may end between listdir and open
        with contextlib.suppress(FileNotFoundError), open(
            f"/proc/{pid}/task/{task}/children"
        ) as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def _requests(replay: Replay) -> int:
    stats = httpx.get(replay.url + "/-/replay/stats").json()["requests"]
    return sum(n for key, n in stats.items() if key.startswith("/slurm/"))


def test_soak_of_the_server_process(replay: Replay, tmp_path: Path) -> None:
    """The real `slurm-exporter` server (its collection process included) against the same
    random faults until 2,000 cycles have run: it stays up, its collection process is never
    replaced, /metrics answers every time, and fds, threads and RSS of both stay flat."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_file = (tmp_path / "exporter.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--slurmrestd-url", replay.url,
         "--jwt-key-file", str(replay.key_file), "--jwt-user", "soak", "--jwt-lifespan", "20",
         "--timeout", "0.1", "--interval", "0.001", "--listen-address", f"127.0.0.1:{port}",
         "--collector-shares-interval", "0.001", "--log-level", "warning"],
        cwd=TOP, stderr=log_file,
    )
    parent: list[tuple[int, int, int]] = []
    child: list[tuple[int, int, int]] = []
    t0 = time.monotonic()
    try:
        # the first cycle's snapshot served (connection refused, then build info only, before)
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.ConnectError):
                if b"slurm_exporter_endpoint_up" in httpx.get(url).content:
                    break
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        kids = _children(proc.pid)
        assert len(kids) == 1, kids
        worker = kids[0]
        while _requests(replay) < CYCLES * 5:
            assert proc.poll() is None, "the exporter exited"
            assert time.monotonic() - t0 < 240, "too slow"
            r = httpx.get(url)  # a new connection each time
            assert r.status_code == 200 and b"slurm_exporter_endpoint_up" in r.content
            if time.monotonic() - t0 > 3:  # after the warm-up
                parent.append(_proc_stats(proc.pid))
                child.append(_proc_stats(worker))
            assert _children(proc.pid) == [worker]  # never died, never replaced
            time.sleep(0.25)  # sampling: the processes are another's, nothing to await
        wall = time.monotonic() - t0
        replay.clear_faults()
        deadline = time.monotonic() + 30
        while b'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' not in httpx.get(url).content:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        log_file.close()
    log = (tmp_path / "exporter.log").read_text()
    assert code == 0 and "Traceback" not in log, log[-3000:]
    xs = list(range(len(parent)))
    report = (
        f"server soak: {_requests(replay) // 5}+ cycles in {wall:.1f} s; parent RSS "
        f"{parent[0][0] / 2**20:.1f} -> {parent[-1][0] / 2**20:.1f} MiB, fds "
        f"{min(p[1] for p in parent)}-{max(p[1] for p in parent)}, threads "
        f"{min(p[2] for p in parent)}-{max(p[2] for p in parent)}; collection process RSS "
        f"{child[0][0] / 2**20:.1f} -> {child[-1][0] / 2**20:.1f} MiB (slope "
        f"{slope([float(x) for x in xs], [float(c[0]) for c in child]):.0f} B/sample), fds "
        f"{min(c[1] for c in child)}-{max(c[1] for c in child)}, threads "
        f"{min(c[2] for c in child)}-{max(c[2] for c in child)}"
    )
    print("\n" + report)
    for name, series in (("parent", parent), ("child", child)):
        fds_ = [s[1] for s in series]
        threads_ = [s[2] for s in series]
        # a sample may catch a scrape's connection and thread on their way out, or the
        # pool between connections: bounded swings; a leak would soon break the bound
        assert max(fds_) - min(fds_) <= 6, (name, fds_)
        assert max(threads_) - min(threads_) <= 3, (name, threads_)
        assert series[-1][0] - series[0][0] < 8 * 2**20, (name, report)

"""A server-mode exporter against a lab, scraped cycle after cycle, and a job churn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.lab import TOP, Lab

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerExporter:
    """`python -m exporter` in server mode, its /metrics, and a wait for its cycles."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return parse(resp.read().decode())

    def cycle_started_after(self, t: float, timeout: float = 60) -> Samples:
        """The first snapshot of a cycle that started after unix time `t` (polled)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "the exporter exited"
            s = self.scrape()
            done = s.get("slurm_exporter_collection_timestamp_seconds")
            took = s.get("slurm_exporter_collection_duration_seconds")
            if done and took and done[0][1] - took[0][1] > t:
                return s
            assert time.monotonic() < deadline, "no new collection cycle"
            time.sleep(0.2)


class Served:
    """A long-running server-mode exporter whose answer is always that of a cycle started
    after the question (so it compares with what Slurm's commands say now) and after the
    exporter had run `cycles` cycles (so update_time and kept data are in play)."""

    def __init__(self, server: ServerExporter, cycles: int, interval: float = 3) -> None:
        self.server = server
        self.ready_at = time.time() + cycles * interval

    def samples(self) -> Samples:
        return self.server.cycle_started_after(max(time.time(), self.ready_at))


@contextmanager
def server_exporter(*args: str, interval: float = 3) -> Iterator[ServerExporter]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{port}",
         "--interval", str(interval), *args],
        cwd=TOP, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(TOP)},
    )
    server = ServerExporter(proc, f"http://127.0.0.1:{port}/metrics")
    try:
        deadline = time.monotonic() + 30
        while True:  # until it serves
            try:
                server.scrape()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the exporter does not serve"
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def job_churn(lab: Lab, every: float = 2.0) -> Iterator[list[str]]:
    """Jobs coming and going while the block runs: every `every` s a short job is
    submitted and, a few seconds later, cancelled (the lab's node is full, so they
    pend; the first ones may run where there is room). All are cancelled at the end."""
    ids: list[str] = []
    stop = threading.Event()

    def churn() -> None:
        while not stop.wait(every):
            out = lab.slurm("sbatch", "--parsable", "-J", "churn", "-t", "1", "-o",
                            "/dev/null", "--wrap", "sleep 1")
            ids.append(out.strip().split(";")[0])
            if len(ids) > 2:
                lab.run("exec", "--", "scancel", ids[-3], check=False)

    thread = threading.Thread(target=churn, name="churn", daemon=True)
    thread.start()
    try:
        yield ids
    finally:
        stop.set()
        thread.join(30)
        lab.run("exec", "--", "scancel", "--name=churn", check=False)

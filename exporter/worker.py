"""Server mode: collection cycles run in a child process whose snapshots the server
process serves.

A cycle on a large cluster keeps a CPU busy for seconds decoding JSON; in the server
process it would hold the GIL against the /metrics thread (tens of ms per scrape). The
child runs `Collection.run_in_process` and sends every snapshot over a pipe (exporter.pipe).
The server process builds no HTTP client and no thread pool of its own: it starts the
child, reads its snapshots, and starts a new child when the child exits, sends a frame
that is not a snapshot, or sends nothing for longer than a cycle can take (`stall_after`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.collectors.health import collect_build_info
from exporter.cycle import Snapshot, first_snapshot, render
from exporter.pipe import (
    FrameError,
    decode_snapshot,
    decode_start,
    encode_snapshot,
    encode_start,
    read_frame,
    write_frame,
)
from exporter.settings import Settings

log = logging.getLogger(__name__)

# Beyond its requests, what a cycle may take: decoding 100k jobs at low priority on a
# busy host, the child's start-up.
_STALL_MARGIN = 60.0
# Requests a cycle may make one after another, each bounded by --timeout: the version
# discovery, the call, its retry after a refused token (a token renewal before it), a
# full call after an update_time answer that cannot be used.
_SERIAL_REQUESTS = 5

# The child's command: isolated (-I: no current directory, PYTHONPATH or user site on
# sys.path, so a gzip.py left where the exporter was started is never imported in the
# process that holds the key); the exporter's own folder goes after the standard library.
_BOOT = (
    "import sys; top = sys.argv[1]\n"
    "if top not in sys.path:\n"
    "    i = next((i for i, p in enumerate(sys.path) if p.endswith('-packages')), len(sys.path))\n"
    "    sys.path.insert(i, top)\n"
    "from exporter.worker import child_main; child_main()"
)


RESTART_REASONS = ("exited", "stalled", "bad_frame")


def collect_restarts(restarts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(
        "slurm_exporter_collection_process_restarts",
        "Server mode: collection processes started again since the exporter started, by "
        "reason: exited (it died), stalled (no snapshot for --interval + 5 x --timeout + "
        "60 s), bad_frame (it sent something that is not a snapshot)",
        labels=["reason"],
    )
    for reason in RESTART_REASONS:
        family.add_metric([reason], float(restarts.get(reason, 0)))
    return family


def stall_bound(settings: Settings) -> float:
    """Seconds without a snapshot after which the collection process counts as stuck."""
    return settings.interval + _SERIAL_REQUESTS * settings.timeout + _STALL_MARGIN


class CollectionProcess:
    """Supervises the collection process and holds the last snapshot it sent."""

    def __init__(
        self, settings: Settings, stall_after: float | None = None, target: str = ""
    ) -> None:
        self._settings = settings
        self.target = target  # with clusters: the cluster's name
        self.collected = False  # a snapshot came from a cycle (not first_snapshot's)
        self._stall_after = stall_bound(settings) if stall_after is None else stall_after
        self.snapshot: Snapshot = first_snapshot()
        self._last_frame = time.monotonic()
        self._bad_frame = False
        self.restarts: Counter[str] = Counter()

    @property
    def _named(self) -> str:
        return f"cluster {self.target}: " if self.target else ""

    def run(self, stop: threading.Event) -> None:
        """Keep a collection process running until `stop` is set."""
        while not stop.is_set():
            started = time.monotonic()
            proc = _start_child(self._settings, dict(self.restarts), self.target)
            self._last_frame, self._bad_frame = time.monotonic(), False
            reader = threading.Thread(
                target=self._read_snapshots, args=(proc,), name="snapshots", daemon=True
            )
            reader.start()
            stalled = self._watch(proc, stop)
            _stop_child(proc, kill=stalled)
            reader.join(5)
            if stop.wait(0.2):  # the child went first on a signal to both of us
                break
            reason = "stalled" if stalled else "bad_frame" if self._bad_frame else "exited"
            self.restarts[reason] += 1
            if reason == "exited":
                log.error(
                    "%sthe collection process exited (code %s); starting a new one",
                    self._named, proc.returncode,
                )
            pause = min(self._settings.interval, 10.0) - (time.monotonic() - started)
            stop.wait(max(0.0, pause))

    def _watch(self, proc: subprocess.Popen[bytes], stop: threading.Event) -> bool:
        """Wait until `stop`, the child's exit, or its stall (then True)."""
        while not stop.is_set() and proc.poll() is None:
            silent = time.monotonic() - self._last_frame
            if silent > self._stall_after:
                log.error(
                    "%sno snapshot from the collection process for %.0f s (limit: --interval "
                    "+ %d x --timeout + %.0f s): its cycle is stuck; starting a new one",
                    self._named, silent, _SERIAL_REQUESTS, _STALL_MARGIN,
                )
                return True
            stop.wait(min(0.5, self._stall_after / 4))
        return False

    def _read_snapshots(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            while (payload := read_frame(proc.stdout)) is not None:
                self.snapshot = decode_snapshot(payload)
                self.collected = True
                self._last_frame = time.monotonic()
        except (FrameError, OSError) as e:  # start afresh rather than trust the rest
            log.error(
                "%sbad snapshot from the collection process (%s); starting a new one",
                self._named, e,
            )
            self._bad_frame = True
            with contextlib.suppress(OSError):
                proc.kill()


def _start_child(
    settings: Settings, restarts: dict[str, int], target: str = ""
) -> subprocess.Popen[bytes]:
    import exporter

    top = str(Path(exporter.__file__).resolve().parent.parent)
    # the target's name (CLUSTER_NAME_RE: no option, no space) names it in `ps` too
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _BOOT, top, *([target] if target else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
    )
    assert proc.stdin is not None
    write_frame(proc.stdin, encode_start(settings, restarts))
    return proc


def _stop_child(proc: subprocess.Popen[bytes], kill: bool = False) -> None:
    if proc.poll() is None:
        if kill:  # stuck: it may not get to handle a SIGTERM
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def child_main() -> None:
    """The collection process: see CollectionProcess."""
    import dataclasses
    import gzip
    import signal

    from exporter.auth import AuthError, token_source_from_settings
    from exporter.client import SlurmrestdClient
    from exporter.cycle import Collection
    from exporter.logs import setup_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us too; the parent stops us
    # Batch work: let the scheduler prefer the server process (and whatever else runs on
    # the host) when they want a CPU while a cycle decodes a large answer.
    with contextlib.suppress(OSError):
        os.nice(10)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not break the frames
    payload = read_frame(sys.stdin.buffer)
    if payload is None:
        return  # the server process went before sending the settings
    settings, restarts = decode_start(payload)
    setup_logging(settings.log_level, target=sys.argv[2] if len(sys.argv) > 2 else "")
    restarted = render([collect_restarts(restarts)])  # the same in every snapshot
    stop = threading.Event()

    def parent_gone() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed our stdin or died
        stop.set()

    threading.Thread(target=parent_gone, name="parent", daemon=True).start()

    def publish(snap: Snapshot) -> None:
        snap = dataclasses.replace(snap, exposition=snap.exposition + restarted)
        # gzipped here, once per cycle, rather than by the server for every scrape
        gzipped = gzip.compress(snap.exposition, compresslevel=1)
        try:
            write_frame(out, encode_snapshot(snap, gzipped))
        except (FrameError, OSError) as e:  # the parent is gone, or the page is absurd
            log.error("collection process: cannot send the snapshot: %s", e)
            stop.set()

    try:  # checked by the parent at start: this fails only if a file changed since
        tokens = token_source_from_settings(settings)
        collection = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    except (AuthError, ValueError) as e:  # ValueError: --tls-ca-file
        log.error("collection process: %s", e)
        sys.exit(2)
    try:
        collection.run_in_process(stop, publish)
    finally:
        collection.close()


# --- many clusters: the exporter's own health on /metrics --------------------------


def targets_health(processes: Mapping[str, CollectionProcess]) -> Snapshot:
    """What /metrics serves with clusters: the exporter's version, and for each cluster
    (label `target`) whether its last cycle reached every endpoint, when it ended, and its
    collection process' restarts. Each cluster's own metrics are on /probe?target=NAME."""
    families = [collect_build_info(__version__), *collect_targets(processes)]
    return Snapshot(render(families), time.time(), all(p.collected for p in processes.values()))


def collect_targets(processes: Mapping[str, CollectionProcess]) -> list[Metric]:
    up = GaugeMetricFamily(
        "slurm_exporter_target_up",
        "With clusters: 1 if the cluster's last collection cycle reached every endpoint, "
        "0 if one failed or no cycle has ended yet (its /probe says which and why)",
        labels=["target"],
    )
    ended = GaugeMetricFamily(
        "slurm_exporter_target_last_collection_timestamp_seconds",
        "With clusters: when the cluster's last collection cycle ended, as a Unix time; "
        "absent until one has",
        labels=["target"],
    )
    restarts = CounterMetricFamily(
        "slurm_exporter_target_collection_process_restarts",
        "With clusters: the cluster's collection processes started again since the exporter "
        "started, by reason (as slurm_exporter_collection_process_restarts_total)",
        labels=["target", "reason"],
    )
    for name, process in processes.items():
        snap = process.snapshot
        up.add_metric([name], 1.0 if process.collected and snap.all_up else 0.0)
        if process.collected:
            ended.add_metric([name], snap.created_at)
        for reason in RESTART_REASONS:
            restarts.add_metric([name, reason], float(process.restarts.get(reason, 0)))
    return [up, ended, restarts]

"""Many clusters from one exporter (issue 13): N clusters served by the replay slurmrestd.

    python3 -m benchmarks.clusters [--clusters 10] [--jobs 10000] [--nodes 1000]
        [--interval 15] [--seconds 90] [--data-root /tmp/slurm-exporter-bench]

One replay server (benchmarks/replay.py, its own process) per cluster, all serving the same
generated cluster, touched every second so that every cycle fetches /jobs and /nodes in
full (the cost of a busy cluster, not of an unchanged one). One exporter with a clusters
--config-file of N clusters. Two phases of --seconds each:

1. all clusters up;
2. cluster c00 down (its replay server stopped: connection refused) and c01 slow (every
   answer delayed twice --timeout: each request times out).

Measured in each phase: CPU seconds per cycle of each cluster's collection process (from
/proc/PID/stat, over the cycles it ended, seen as new slurm_exporter_collection_timestamp
values on its /probe), the RSS of the server process and of every collection process
(sampled every second: mean and peak of the sum), the latency of /probe (gzip, as
Prometheus asks: connect to last byte, each cluster in turn, every 0.25 s) and each
cluster's period between cycle ends. Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.run import TOP, _free_port, _pct, dataset, log

_TS = re.compile(rb"^slurm_exporter_collection_timestamp_seconds ([0-9.e+]+)$", re.M)
_TICK = os.sysconf("SC_CLK_TCK")


def _replay(data: Path, key: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.replay", "--data", str(data), "--jwt-key-file",
         str(key), "--listen", "127.0.0.1:0", "--stdin-stop"],
        cwd=TOP, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("URL="):
        raise RuntimeError(f"replay server did not start: {line!r}")
    return proc, line[4:]


def _post(url: str, body: Any = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(url, data, method="POST"), timeout=5).read()


def _children(pid: int) -> dict[str, int]:
    """The collection processes of the exporter `pid`, by cluster (their last argument)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    found = {}
    for child in out.stdout.split():
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            found[argv[-2].decode() if argv[-1] == b"" else argv[-1].decode()] = int(child)
    return found


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _Watch:
    """Probes every cluster in turn; records latencies, cycle ends and RSS."""

    def __init__(self, port: int, names: list[str], exporter: int) -> None:
        self.port, self.names, self.exporter = port, names, exporter
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.cycles: dict[str, set[float]] = defaultdict(set)
        self.rss: list[int] = []

    def probe(self, name: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start = time.perf_counter()
        conn.request("GET", f"/probe?target={name}", headers={"Accept-Encoding": "gzip"})
        import gzip

        body = conn.getresponse().read()
        self.latency[name].append(time.perf_counter() - start)
        conn.close()
        m = _TS.search(gzip.decompress(body))
        if m:
            self.cycles[name].add(float(m[1]))

    def run(self, seconds: float) -> None:
        end, next_rss = time.monotonic() + seconds, 0.0
        while time.monotonic() < end:
            for name in self.names:
                self.probe(name)
                time.sleep(0.25 / len(self.names))
            if time.monotonic() > next_rss:
                pids = [self.exporter, *_children(self.exporter).values()]
                self.rss.append(sum(_rss(p) for p in pids if Path(f"/proc/{p}").exists()))
                next_rss = time.monotonic() + 1.0


def _phase(port: int, exporter: int, names: list[str], seconds: float) -> dict[str, Any]:
    children = _children(exporter)
    cpu0 = {n: _cpu(p) for n, p in children.items()}
    watch = _Watch(port, names, exporter)
    watch.run(seconds)
    cpu1 = {n: _cpu(p) for n, p in children.items() if Path(f"/proc/{p}").exists()}
    per: dict[str, Any] = {}
    for name in names:
        ends = sorted(watch.cycles[name])
        cycles = len(ends) - 1  # the cycles that ended within the phase, after the first seen
        gaps = [b - a for a, b in itertools.pairwise(ends)]
        lat = sorted(watch.latency[name])
        per[name] = {
            "cycles": cycles,
            "cpu_per_cycle": (cpu1[name] - cpu0[name]) / cycles
            if cycles > 0 and name in cpu1 else None,
            "period": statistics.median(gaps) if gaps else None,
            "max_gap": max(gaps) if gaps else None,
            "p50_ms": _pct(lat, 50) * 1000,
            "p99_ms": _pct(lat, 99) * 1000,
        }
    every = sorted(x for n in names for x in watch.latency[n])
    return {"clusters": per, "rss_mean": statistics.mean(watch.rss), "rss_max": max(watch.rss),
            "p50_ms": _pct(every, 50) * 1000, "p99_ms": _pct(every, 99) * 1000,
            "probes": len(every)}


def _report(args: argparse.Namespace, phases: dict[str, dict[str, Any]], load: str) -> str:
    out = [
        f"`python3 -m benchmarks.clusters --clusters {args.clusters} --jobs {args.jobs} "
        f"--nodes {args.nodes} --interval {args.interval:g} --seconds {args.seconds:g}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load}.",
        "",
        "| phase | cluster | cycles | CPU s / cycle | period s (median / max) | "
        "/probe p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for phase, result in phases.items():
        for name, c in result["clusters"].items():
            cpu = f"{c['cpu_per_cycle']:.2f}" if c["cpu_per_cycle"] is not None else "-"
            period = (f"{c['period']:.1f} / {c['max_gap']:.1f}" if c["period"] is not None
                      else "-")
            out.append(f"| {phase} | {name} | {c['cycles']} | {cpu} | {period} | "
                       f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} |")
    out.append("")
    out.append("| phase | RSS, all processes, MiB (mean / peak) | /probe p50 / p99 ms, "
               "all clusters | probes |")
    out.append("|---|---:|---:|---:|")
    for phase, r in phases.items():
        out.append(f"| {phase} | {r['rss_mean'] / 2**20:.0f} / {r['rss_max'] / 2**20:.0f} | "
                   f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['probes']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.clusters", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--data-root", type=Path,
                    default=Path(tempfile.gettempdir()) / "slurm-exporter-bench")
    args = ap.parse_args(argv)
    data = dataset(args.data_root, args.jobs, args.nodes, "v0.0.45", 1)
    work = Path(tempfile.mkdtemp(prefix="bench-clusters-"))
    key = work / "jwt.key"
    key.write_bytes(b"bench-clusters-key-0123456789abcdef")
    key.chmod(0o600)
    names = [f"c{i:02d}" for i in range(args.clusters)]
    replays = {n: _replay(data, key) for n in names}
    config = work / "clusters.json"
    config.write_text(json.dumps({
        "jwt_user": "bench", "interval": args.interval, "timeout": args.timeout,
        "jwt_key_file": str(key), "log_level": "error",
        "clusters": {n: {"slurmrestd_url": url} for n, (_, url) in replays.items()},
    }))
    port = _free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config-file", str(config), "--listen-address",
         f"127.0.0.1:{port}"], cwd=TOP,
    )  # fmt: skip
    stop = threading.Event()

    def touch() -> None:  # every cycle fetches in full
        while not stop.wait(1.0):
            for proc, url in replays.values():
                if proc.poll() is None:
                    _post(f"{url}/-/replay/touch")

    threading.Thread(target=touch, daemon=True).start()
    try:
        log(f"{args.clusters} clusters of {args.jobs} jobs: waiting for every first cycle")
        watch = _Watch(port, names, exporter.pid)
        deadline = time.monotonic() + 600
        while not all(watch.cycles[n] for n in names) and time.monotonic() < deadline:
            for n in names:
                with contextlib.suppress(OSError):
                    watch.probe(n)
            time.sleep(0.5)
        load0 = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        phases = {}
        log("phase 1: all up")
        phases["all up"] = _phase(port, exporter.pid, names, args.seconds)
        log("phase 2: c00 down, c01 slow")
        proc, _ = replays["c00"]
        proc.terminate()
        proc.wait(10)
        _post(f"{replays['c01'][1]}/-/replay/faults", {"delay": 2 * args.timeout})
        phases["c00 down, c01 slow"] = _phase(port, exporter.pid, names, args.seconds)
        load1 = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(_report(args, phases, f"[{load0}] before, [{load1}] after"))
    finally:
        stop.set()
        exporter.terminate()
        exporter.wait(30)
        for proc, _ in replays.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

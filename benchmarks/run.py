"""The benchmark: one exporter cycle at 1k, 10k and 100k jobs against a replay slurmrestd.

    make bench                      # = python3 -m benchmarks.run
    python3 -m benchmarks.run --sizes 1000x100,10000x1000 --runs 3   # a quicker look

For each (jobs, nodes), on a dataset from benchmarks/generate.py (cached under
--data, default /var/tmp/slurm-exporter-bench) served by benchmarks/replay.py:

- `slurm-exporter --once` as a separate process, several times: CPU seconds (user +
  sys, from wait4), wall time and peak RSS, process start included; every run's output
  is checked against the truth file (exact counts, or the run fails);
- the baseline, in the same run: CPU of a bare `json.loads` of the same answers
  (openapi, diag, jobs, nodes, partitions, ping), in a fresh process each time;
- `/metrics` latency in server mode while cycles run back to back: 3 rounds of 200
  requests, one at a time as a scraper sends them, paced to spread over about one
  cycle, each timed from connect to last byte; plain and with `Accept-Encoding: gzip`;
  and the same with no cycle running, for reference. Requests are counted as "in a
  cycle" from the cycle times the snapshots themselves report.

Medians of the runs go to benchmarks/RESULTS.md (with the machine, and a profile of
one cycle with --profile) and every measurement to benchmarks/results.json. The
0x0 dataset measures start-up alone (an empty cluster), for the linear-growth check.
Text between the `notes` markers in RESULTS.md is kept when it is rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import generate
from benchmarks.expect import differences

TOP = Path(__file__).resolve().parents[1]
RESULTS_MD = TOP / "benchmarks" / "RESULTS.md"
RESULTS_JSON = TOP / "benchmarks" / "results.json"
DEFAULT_SIZES = "0x0,1000x100,10000x1000,100000x10000"
NOTES_BEGIN, NOTES_END = "<!-- notes: begin -->", "<!-- notes: end -->"

BASELINE = r"""
import json, resource, sys, time
bodies = [open(p, "rb").read() for p in sys.argv[1:]]
t0 = time.process_time()
for b in bodies:
    json.loads(b)
cpu = time.process_time() - t0
print(json.dumps({"cpu": cpu,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dataset(root: Path, jobs: int, nodes: int, version: str, seed: int) -> Path:
    out = root / f"{jobs}x{nodes}-{version}-s{seed}"
    manifest = out / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if (m.get("jobs"), m.get("nodes"), m.get("versions"), m.get("seed")) == (
            jobs, nodes, [version], seed
        ):
            return out
        shutil.rmtree(out)
    log(f"generating {jobs} jobs / {nodes} nodes ({version}) in {out}")
    generate.generate(out, jobs, nodes, [version], seed, log=log)
    return out


@contextlib.contextmanager
def replay_server(data: Path, key: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.replay", "--data", str(data),
         "--jwt-key-file", str(key), "--listen", "127.0.0.1:0"],
        cwd=TOP, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("URL="):
            raise RuntimeError(f"replay server did not start: {line!r}")
        yield line[4:]
    finally:
        proc.terminate()
        proc.wait(10)


def exporter_cmd(url: str, key: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "exporter", "--slurmrestd-url", url, "--jwt-key-file",
            str(key), "--jwt-user", "bench", "--log-level", "warning", *extra]


def once(url: str, key: Path, truth: dict[str, Any], check: bool) -> dict[str, float]:
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(exporter_cmd(url, key, "--once"), cwd=TOP, stdout=out,
                                stderr=subprocess.PIPE)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"--once failed ({proc.returncode}): {err[-2000:]}")
        if check:
            out.seek(0)
            problems = differences(truth, out.read().decode())
            if problems:
                raise RuntimeError("counts differ from the truth file:\n" + "\n".join(problems))
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "user": ru.ru_utime,
        "sys": ru.ru_stime,
        "wall": wall,
        "maxrss": ru.ru_maxrss * 1024,
    }


def baseline(files: list[Path]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", BASELINE, *map(str, files)], check=True,
                         capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_TS = re.compile(rb"^slurm_exporter_collection_timestamp_seconds ([0-9.e+]+)$", re.M)
_DUR = re.compile(rb"^slurm_exporter_collection_duration_seconds ([0-9.e+-]+)$", re.M)


def _scrape(port: int, gzip: bool) -> tuple[float, float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Accept-Encoding": "gzip"} if gzip else {}
        start = time.time()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return start, time.time(), body
    finally:
        conn.close()


def _start_server(url: str, key: Path, interval: str, wait: float) -> tuple[Any, int]:
    port = _free_port()
    proc = subprocess.Popen(
        exporter_cmd(url, key, "--listen-address", f"127.0.0.1:{port}", "--interval", interval),
        cwd=TOP, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + wait
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}"
                               if proc.stderr else "server exited")
        with contextlib.suppress(OSError):
            _, _, body = _scrape(port, False)
            if _TS.search(body):
                return proc, port
        if time.time() > deadline:
            proc.terminate()
            raise RuntimeError("no snapshot from the exporter in time")
        time.sleep(0.05)


def _paced(port: int, gzipped: bool, requests: int, period: float,
           cycles: set[tuple[float, float]]) -> list[tuple[float, float]]:
    """`requests` scrapes one at a time, started every `period` s (or when the last ends)."""
    import gzip

    samples: list[tuple[float, float]] = []  # start, end
    t_next = time.time() + 0.05
    for _ in range(requests):
        delay = t_next - time.time()
        if delay > 0:
            time.sleep(delay)
        start, end, body = _scrape(port, gzipped)
        samples.append((start, end))
        _note_cycle(gzip.decompress(body) if gzipped else body, cycles)
        t_next += period
    return samples


def _summary(samples: list[tuple[float, float]], spans: list[tuple[float, float]]
             ) -> dict[str, float]:
    lat = sorted((end - start) * 1000 for start, end in samples)
    in_cycle = sum(1 for start, end in samples if any(a <= end and start <= b for a, b in spans))
    return {"p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": lat[-1],
            "in_cycle": in_cycle}


def latency(url: str, key: Path, cycle_wall: float, requests: int, rounds: int = 3
            ) -> dict[str, Any]:
    """/metrics latency while cycles run back to back (interval shorter than a cycle), and
    for reference with no cycle running at all (same server, same pacing). `rounds`
    rounds of `requests` each; the figures are the medians over the rounds (a p99 of
    200 requests is its 2nd-3rd worst, which one busy moment of a shared machine moves)."""
    # the data "changed": answers to ?update_time= are full, every cycle does all the work
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    conn.request("POST", "/-/replay/touch")
    conn.getresponse().read()
    conn.close()
    period = max(cycle_wall / requests, 0.005)
    cycles: set[tuple[float, float]] = set()
    results: dict[str, list[list[tuple[float, float]]]] = {"plain": [], "gzip": []}
    proc, port = _start_server(url, key, "0.05", 120 + 5 * cycle_wall)
    try:
        for _ in range(rounds):
            for mode in ("plain", "gzip"):
                results[mode].append(_paced(port, mode == "gzip", requests, period, cycles))
        # scrapes after the next cycle ends tell when the last ones ran
        wait_until = time.time() + 2 * cycle_wall + 1
        while time.time() < wait_until:
            _, _, body = _scrape(port, False)
            _note_cycle(body, cycles)
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
    spans = sorted((end - dur, end) for end, dur in cycles)
    out: dict[str, Any] = {"period_ms": period * 1000, "requests": requests, "rounds": rounds,
                           "cycles_seen": len(spans)}
    for mode, per_round in results.items():
        out[mode] = _median_rounds([_summary(samples, spans) for samples in per_round])
    proc, port = _start_server(url, key, "3600", 120 + 5 * cycle_wall)
    try:
        idle = [_paced(port, False, requests, period, set()) for _ in range(rounds)]
    finally:
        proc.terminate()
        proc.wait(30)
    out["idle"] = _median_rounds([_summary(samples, []) for samples in idle])
    return out


def _median_rounds(rounds: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    out["rounds"] = rounds
    return out


def _note_cycle(body: bytes, cycles: set[tuple[float, float]]) -> None:
    ts, dur = _TS.search(body), _DUR.search(body)
    if ts and dur:
        cycles.add((float(ts.group(1)), float(dur.group(1))))


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * pct / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def profile(url: str, key: Path, top: int = 18) -> str:
    """cProfile of one cycle run in the main thread (endpoints one after the other)."""
    script = (
        "import cProfile, pstats, io, sys\n"
        "from benchmarks.profile_cycle import run\n"
        "p = cProfile.Profile(); p.enable(); run(sys.argv[1:]); p.disable()\n"
        "s = io.StringIO(); st = pstats.Stats(p, stream=s)\n"
        f"st.sort_stats('tottime').print_stats({top})\n"
        "print(s.getvalue())\n"
    )
    args = exporter_cmd(url, key)[3:]
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=TOP, check=True,
                         capture_output=True, text=True)
    return out.stdout


def import_profile(top: int = 10) -> str:
    """What `--once` start-up imports cost (python -X importtime, which adds its own
    overhead): the total, and the costliest top-level packages, each counted once."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "import exporter.cli, exporter.auth, exporter.client, exporter.cycle"],
        cwd=TOP, capture_output=True, text=True, check=True,
    )
    total = 0
    by_package: dict[str, int] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        cumulative, depth, name = int(m.group(2)), len(m.group(3)), m.group(4)
        if depth == 1:  # imported by the script itself
            total += cumulative
        package = name.split(".")[0]
        if package != "exporter":
            by_package[package] = max(by_package.get(package, 0), cumulative)
    lines = [f"{total / 1000:.0f} ms of imports in all; the costliest packages (each with "
             "what it imports):"]
    for name, cum in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {cum / 1000:7.1f} ms  {name}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    import msgspec

    return {
        "cpu": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def measure_size(args: argparse.Namespace, jobs: int, nodes: int, key: Path) -> dict[str, Any]:
    data = dataset(args.data, jobs, nodes, args.version, args.seed)
    truth = json.loads((data / "truth.json").read_text())
    v = args.version
    files = [data / "openapi_v3.json"] + [
        data / f"{v}_{e}.json" for e in generate.ENDPOINTS if (data / f"{v}_{e}.json").exists()
    ]
    for f in files:  # into the page cache: measure the exporter, not the disk
        with f.open("rb") as fh:
            while fh.read(16 << 20):
                pass
    sizes = {f.name: f.stat().st_size for f in files}
    runs = args.big_runs if jobs >= 100_000 else args.runs
    result: dict[str, Any] = {"jobs": jobs, "nodes": nodes, "version": v, "runs": runs,
                              "bytes": sizes, "largest_answer": max(sizes.values())}
    with replay_server(data, key) as url:
        once(url, key, truth, check=True)  # warm-up (and the counts must be exact)
        result["once"] = []
        result["baseline"] = []
        for i in range(runs):
            r = once(url, key, truth, check=True)
            b = baseline(files)
            result["once"].append(r)
            result["baseline"].append(b)
            log(f"{jobs}x{nodes} run {i + 1}/{runs}: cycle {r['cpu']:.2f} s CPU "
                f"({r['wall']:.2f} s wall, {r['maxrss'] / 2**20:.0f} MiB), json.loads "
                f"{b['cpu']:.2f} s")
        cpu = median(result["once"], "cpu")
        wall = median(result["once"], "wall")
        base = median(result["baseline"], "cpu")
        result["median"] = {
            "cpu": cpu,
            "user": median(result["once"], "user"),
            "sys": median(result["once"], "sys"),
            "wall": wall,
            "maxrss": median(result["once"], "maxrss"),
            "baseline_cpu": base,
            "baseline_maxrss": median(result["baseline"], "maxrss"),
            "ratio": cpu / base if base else None,
        }
        if args.latency_requests and jobs:
            result["latency"] = latency(url, key, wall, args.latency_requests)
            lat = result["latency"]
            log(f"{jobs}x{nodes} /metrics p50 {lat['plain']['p50_ms']:.2f} ms p99 "
                f"{lat['plain']['p99_ms']:.2f} ms; gzip p99 {lat['gzip']['p99_ms']:.2f} ms; "
                f"no cycle running: p99 {lat['idle']['p99_ms']:.2f} ms")
        if args.profile and jobs == max(s[0] for s in args.size_list):
            result["profile"] = profile(url, key)
    return result


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f}" if n >= 1e6 else f"{n / 1e6:.2f}"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    old = path.read_text() if path.exists() else ""
    notes = ""
    if NOTES_BEGIN in old and NOTES_END in old:
        notes = old[old.index(NOTES_BEGIN): old.index(NOTES_END) + len(NOTES_END)]
    m = report["machine"]
    sizes = [s for s in report["sizes"] if s["jobs"]]
    zero = next((s for s in report["sizes"] if not s["jobs"]), None)
    start_cpu = zero["median"]["cpu"] if zero else 0.0
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` (`python3 -m benchmarks.run`), {report['date']}, API {report['version']}, "
        f"slurm-exporter {report['exporter_version']} (commit {report['commit']}).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Linux {m['kernel']}, Python {m['python']}, msgspec {m['msgspec']}. Load average "
        f"(1/5/15 min) {m['load_average']} at the start, {report.get('load_average_end')} at "
        "the end (the machine may be shared: CPU seconds are per process and hold up "
        "better than wall times).",
        "",
        "One full `slurm-exporter --once` cycle as a separate process (start-up included), "
        "median of the runs; baseline: a bare `json.loads` of the same answers in a fresh "
        "process, same run. `/metrics`: 3 rounds of 200 requests, one at a time, spread "
        "over a cycle while cycles run back to back, each timed from connect to last byte; "
        "medians of the rounds' p50 and p99.",
        "",
        "| jobs | nodes | /jobs MB | /nodes MB | runs | cycle CPU s | wall s | peak RSS MB "
        "| RSS / largest answer | json.loads CPU s | ratio | /metrics p50 / p99 ms "
        "| gzip p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    v = report["version"]
    if zero:
        z = zero["median"]
        lines.append(
            f"| 0 | 0 | - | - | {zero['runs']} | {z['cpu']:.2f} | {z['wall']:.2f} | "
            f"{z['maxrss'] / 1e6:.0f} | - | - | - | - | - |"
        )
    for s in sizes:
        med, lat = s["median"], s.get("latency")
        lat_txt = (f"{lat['plain']['p50_ms']:.2f} / {lat['plain']['p99_ms']:.2f}"
                   if lat else "-")
        gz_txt = f"{lat['gzip']['p50_ms']:.2f} / {lat['gzip']['p99_ms']:.2f}" if lat else "-"
        lines.append(
            f"| {s['jobs']:,} | {s['nodes']:,} | {_mb(s['bytes'][f'{v}_jobs.json'])} | "
            f"{_mb(s['bytes'][f'{v}_nodes.json'])} | {s['runs']} | {med['cpu']:.2f} | "
            f"{med['wall']:.2f} | {med['maxrss'] / 1e6:,.0f} | "
            f"{med['maxrss'] / s['largest_answer']:.2f} | {med['baseline_cpu']:.2f} | "
            f"{med['ratio']:.3f} | {lat_txt} | {gz_txt} |"
        )
    lines.append("")
    big = max(sizes, key=lambda s: s["jobs"]) if sizes else None
    if big:
        med = big["median"]
        lines += ["## Targets at the largest size", ""]
        lines.append(f"- cycle CPU / json.loads: **{med['ratio']:.3f}** (target <= 0.25, aim "
                     f"0.15); counts exact in every run (checked against truth.json)")
        lines.append(f"- peak RSS / largest answer: **{med['maxrss'] / big['largest_answer']:.2f}"
                     f"** (target <= 1.5)")
        if big.get("latency"):
            lat = big["latency"]
            lines.append(
                f"- /metrics p99 while cycles run: **{lat['plain']['p99_ms']:.2f} ms** plain, "
                f"**{lat['gzip']['p99_ms']:.2f} ms** gzip (target <= 5 ms); "
                f"{lat['plain']['in_cycle']}/{lat['requests']} requests fell inside a cycle "
                f"(for reference, with no cycle running: p50 {lat['idle']['p50_ms']:.2f} ms, "
                f"p99 {lat['idle']['p99_ms']:.2f} ms)"
            )
        ordered = sorted(sizes, key=lambda s: s["jobs"])
        for a, b in itertools.pairwise(ordered):
            above_a = a["median"]["cpu"] - start_cpu
            above_b = b["median"]["cpu"] - start_cpu
            head = (f"- growth {a['jobs']:,} -> {b['jobs']:,} jobs: CPU above start-up "
                    f"({start_cpu:.2f} s) {max(above_a, 0):.2f} -> {above_b:.2f} s")
            if above_a < 0.05:
                lines.append(f"{head} (the smaller size is within start-up noise)")
            else:
                lines.append(f"{head}: x{above_b / above_a:.1f} for "
                             f"x{b['jobs'] / a['jobs']:.0f} the jobs (target <= x11)")
        lines.append("")
        if big.get("profile"):
            lines += ["## Profile of one cycle at the largest size", "",
                      "cProfile, endpoints called one after the other in one thread "
                      "(benchmarks/profile_cycle.py), sorted by own time:", "", "```",
                      _trim_profile(big["profile"]), "```", ""]
    if report.get("imports"):
        lines += ["## Start-up imports", "", "```", report["imports"], "```", ""]
    lines += [notes or f"{NOTES_BEGIN}\n{NOTES_END}", ""]
    path.write_text("\n".join(lines))


def _trim_profile(text: str) -> str:
    keep, started = [], False
    for line in text.splitlines():
        if "function calls" in line:
            keep.append(line.strip())
        if line.strip().startswith("ncalls"):
            started = True
        if started and line.strip():
            keep.append(line.replace(str(TOP) + "/", "").rstrip())
    return "\n".join(keep)


def _git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=TOP, check=True,
                              capture_output=True, text=True).stdout.strip()
    return "unknown"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        jobs, _, nodes = item.strip().partition("x")
        out.append((int(jobs), int(nodes)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="JOBSxNODES,... (0x0: start-up)")
    ap.add_argument("--runs", type=int, default=5, help="runs per size below 100k jobs")
    ap.add_argument("--big-runs", type=int, default=5, help="runs at 100k jobs and more")
    ap.add_argument("--version", default="v0.0.45", choices=generate.SUPPORTED_VERSIONS)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/slurm-exporter-bench"))
    ap.add_argument("--latency-requests", type=int, default=200, help="0: skip /metrics")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--out", type=Path, default=RESULTS_MD)
    ap.add_argument("--json", type=Path, default=RESULTS_JSON)
    args = ap.parse_args(argv)
    args.size_list = parse_sizes(args.sizes)
    args.data.mkdir(parents=True, exist_ok=True)
    key = args.data / "jwt_hs256.key"
    if not key.exists():
        key.write_bytes(os.urandom(32).hex().encode())
    key.chmod(0o600)  # the exporter refuses a key that other users may read
    from exporter import __version__

    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "version": args.version,
        "exporter_version": __version__,
        "commit": _git_commit(),
        "machine": machine(),
        "sizes": [],
    }
    for jobs, nodes in args.size_list:
        report["sizes"].append(measure_size(args, jobs, nodes, key))
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["imports"] = import_profile()
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, args.out)
    log(f"wrote {args.out} and {args.json}")
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

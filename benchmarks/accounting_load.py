"""What one accounting poll costs slurmdbd (issue 12), against `sacct` over the same window.

    scripts/slurmlab.sh start --release 24.11 --with-slurmdbd --cpus 16
    python3 -m benchmarks.accounting_load --release 24.11 --submit 3000 [--runs 3] [--json OUT]

In a lab started with --with-slurmdbd (scripts/slurmlab.sh; SLURMLAB_CACHE / SLURMLAB_PORT as
for the lab), it submits --submit jobs (arrays of 1,000 `true`, the most MaxArraySize=1001
allows) and waits until they have ended, then asks /slurmdb/vX/jobs/ for windows ending now
(5 min, 15 min = the exporter's default poll of 300 s plus its 600 s overlap, 1 h = the
default --accounting-max-window, and the whole history), with and without the state list that
leaves PENDING out, with and without job steps, as the exporter asks:
`start_time=uts<LO>&end_time=uts<HI>` (parse_time's "uts" form: the only one every release
parses, src/common/parse_time.c:423 in slurm-24-11-5-1; 24.11's v0.0.40/41 refuse a bare
number) and `skip_steps&show_duplicates&disable_truncate_usage_time` (naming a flag replaces
slurmrestd's default JOBCOND_FLAG_DUP | JOBCOND_FLAG_NO_TRUNC,
src/slurmrestd/plugins/openapi/slurmdbd/jobs.c:92-94).

For each query: the wall time of the request (body read), the bytes and records returned,
and slurmdbd's own time on it: the growth of DBD_GET_JOBS_COND's total in /slurmdb/vX/diag/
(microseconds, src/slurmdbd/rpc_mgr.c) around it; the token's user must be
AdminLevel=Administrator for diag (the script sets it for `exporter`). The same window with
`sacct -X -D -a -S uts<LO> -E uts<HI>` (the same flags: -X NO_STEP, -D DUP, NO_TRUNC by
default, src/sacct/options.c:259) run in the cluster: its wall time (process start included)
and its DBD_GET_JOBS_COND growth.

--max-query-time-range S also checks MaxQueryTimeRange: it sets it in slurmdbd.conf,
restarts slurmdbd, asks a window wider than S as a plain user (alice) and as the exporter
(an Administrator: slurmdbd applies the limit to users below Operator only,
src/slurmdbd/proc_req.c:1137-1157), prints both answers, then restores the file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
LAB = TOP / "scripts" / "slurmlab.sh"
# every state but PENDING (the spec's list): ended states match on time_end in the window,
# RUNNING/SUSPENDED on overlapping the window (as_mysql_jobacct_process.c:384-465)
STATES = ("RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,PREEMPTED,"
          "BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,REQUEUED")
FLAGS = "skip_steps=true&show_duplicates=true&disable_truncate_usage_time=true"
RPC = "DBD_GET_JOBS_COND"


def lab(release: str, *args: str) -> str:
    return subprocess.run(["bash", str(LAB), args[0], "--release", release, *args[1:]],
                          check=True, capture_output=True, text=True).stdout


def slurm(release: str, *cmd: str) -> str:
    return lab(release, "exec", "--", *cmd)


class Rest:
    def __init__(self, release: str, user: str = "exporter") -> None:
        env = dict(line.split("=", 1) for line in lab(release, "env").splitlines() if "=" in line)
        self.url = env["SLURMRESTD_URL"]
        self.user = user
        self.token = lab(release, "token", "--user", user, "--lifespan", "7200").strip()
        self.version = self._dbd_version()

    def get(self, path: str) -> tuple[int, bytes, float]:
        # 22.05 wants the user's name beside the token; later releases ignore it
        req = urllib.request.Request(self.url + path, headers={
            "X-SLURM-USER-TOKEN": self.token, "X-SLURM-USER-NAME": self.user})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            body, status = err.read(), err.code
        return status, body, time.perf_counter() - t0

    def _dbd_version(self) -> str:
        _, body, _ = self.get("/openapi/v3")
        paths = json.loads(body)["paths"]
        versions = sorted({p.split("/")[2] for p in paths if p.startswith("/slurmdb/v")},
                          key=lambda v: [int(x) for x in v[1:].split(".")])
        return versions[-1]

    def jobs_path(self) -> str:
        # 22.05's paths have no trailing slash
        return f"/slurmdb/{self.version}/jobs" + ("" if self.version == "v0.0.38" else "/")

    def rpc_total(self) -> tuple[int, int]:
        """DBD_GET_JOBS_COND's (count, total microseconds) in slurmdbd's diag."""
        suffix = "" if self.version == "v0.0.38" else "/"
        status, body, _ = self.get(f"/slurmdb/{self.version}/diag{suffix}")
        doc = json.loads(body)
        if status != 200 or "statistics" not in doc:
            sys.exit(f"diag answered {status}: {doc.get('errors')} (AdminLevel=Administrator?)")
        for rpc in doc["statistics"]["RPCs"]:
            name = rpc.get("rpc") or rpc.get("type")
            if name == RPC:
                total = rpc["time"]["total"]
                return int(rpc["count"]), int(total["number"] if isinstance(total, dict) else total)
        return 0, 0


@dataclass
class Measure:
    window: str
    seconds: int
    states: bool
    steps: bool
    tool: str
    records: int
    bytes: int
    wall_ms: float
    dbd_ms: float
    rpcs: int


def submit(release: str, count: int) -> None:
    ids = []
    while count > 0:
        n = min(count, 1000)
        out = slurm(release, "sbatch", "--parsable", "-o", "/dev/null", "-e", "/dev/null",
                    f"--array=1-{n}", "-n1", "--mem=50", "-J", "load", "--wrap", "true")
        ids.append(out.strip().split(";")[0])
        count -= n
    t0 = time.monotonic()
    while slurm(release, "squeue", "-h", "-n", "load", "-o", "%i").strip():
        time.sleep(5)
    print(f"submitted and ended {len(ids)} arrays in {time.monotonic() - t0:.0f} s", flush=True)


def history_start(release: str) -> int:
    out = slurm(release, "env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-a", "-n", "-P",
                "-S", "uts1000000", "-E", "now", "-o", "Submit")
    return min(int(line) for line in out.split() if line.isdigit()) - 60


def rest_once(rest: Rest, lo: int, hi: int, states: bool, steps: bool
              ) -> tuple[int, int, float, float, int]:
    query = f"start_time=uts{lo}&end_time=uts{hi}"
    old = rest.version == "v0.0.38"
    if states and old:  # 22.05 splits the value itself (a bare ',' is refused: HTTP 400)
        query += "&state=" + STATES.replace(",", "%2C")
    elif states:
        # one key per state: slurmrestd refuses a bare ',' in a query (HTTP 400 "Unable to
        # parse query.") and takes an encoded one as part of one unknown state name;
        # repeated keys make a list (serializer_url_encoded.c _on_key)
        query += "".join(f"&state={s}" for s in STATES.split(","))
    if not steps:
        # 22.05 knows skip_steps only ("Unknown Query field" otherwise) and keeps its
        # defaults DUP | NO_TRUNC beside it (dbv0.0.38/jobs.c:552)
        query += "&skip_steps=true" if old else f"&{FLAGS}"
    c0, t0 = rest.rpc_total()
    status, body, wall = rest.get(f"{rest.jobs_path()}?{query}")
    c1, t1 = rest.rpc_total()
    doc = json.loads(body)
    if status != 200 or doc.get("errors"):
        sys.exit(f"jobs answered {status}: {doc.get('errors')}")
    return len(doc["jobs"]), len(body), wall * 1000, (t1 - t0) / 1000, c1 - c0


def sacct_once(release: str, rest: Rest, lo: int, hi: int, states: bool, steps: bool
               ) -> tuple[int, int, float, float, int]:
    cmd = ["sacct", "-D", "-a", "-n", "-P", "-S", f"uts{lo}", "-E", f"uts{hi}",
           "-o", "JobID,State,Partition,Account,Submit,Eligible,Start,End,Elapsed,AllocTRES"]
    if not steps:
        cmd.insert(1, "-X")
    if states:
        cmd += ["-s", STATES]
    c0, t0 = rest.rpc_total()
    w0 = time.perf_counter()
    out = slurm(release, *cmd)
    wall = time.perf_counter() - w0
    c1, t1 = rest.rpc_total()
    return len(out.splitlines()), len(out), wall * 1000, (t1 - t0) / 1000, c1 - c0


def measure(release: str, rest: Rest, runs: int) -> list[Measure]:
    now = int(time.time())
    start = history_start(release)
    windows = [("5 min", 300), ("15 min", 900), ("1 h", 3600), ("history", now - start)]
    results = []
    for name, seconds in windows:
        for states in (True, False):
            for steps in (False, True):
                for tool in ("rest", "sacct"):
                    got = []
                    for _ in range(runs):
                        if tool == "rest":
                            got.append(rest_once(rest, now - seconds, now, states, steps))
                        else:
                            got.append(sacct_once(release, rest, now - seconds, now, states, steps))
                    m = Measure(name, seconds, states, steps, tool, got[0][0], got[0][1],
                                statistics.median(g[2] for g in got),
                                statistics.median(g[3] for g in got), got[0][4])
                    results.append(m)
                    print(table_row(m), flush=True)
    return results


def table_row(m: Measure) -> str:
    return (f"| {m.window} | {'no PENDING' if m.states else 'all'} | {'yes' if m.steps else 'no'} "
            f"| {'REST' if m.tool == 'rest' else 'sacct'} | {m.records:,} | {m.bytes / 1e3:,.0f} "
            f"| {m.wall_ms:,.0f} | {m.dbd_ms:,.1f} |")


HEADER = ("| window | states | steps | client | records | kB | wall ms | slurmdbd ms |\n"
          "|---|---|---|---|---:|---:|---:|---:|")


def max_query_time_range(release: str, limit: int) -> dict[str, Any]:
    env = dict(line.split("=", 1) for line in lab(release, "env").splitlines() if "=" in line)
    conf = Path(env["SLURMLAB_CHROOT"]) / "etc/slurm/slurmdbd.conf"
    saved = conf.read_text()
    answers: dict[str, Any] = {}
    try:
        conf.write_text(saved + f"MaxQueryTimeRange={limit // 60}\n")  # minutes
        lab(release, "stop-dbd")
        lab(release, "start-dbd")
        now = int(time.time())
        for user in ("alice", "exporter"):
            rest = Rest(release, user)
            for seconds in (limit - 60, limit + 60):
                flags = "skip_steps=true" if rest.version == "v0.0.38" else FLAGS
                query = f"start_time=uts{now - seconds}&end_time=uts{now}&{flags}"
                status, body, _ = rest.get(f"{rest.jobs_path()}?{query}")
                doc = json.loads(body)
                answer = answers[f"{user} {seconds} s"] = {
                    "status": status, "jobs": len(doc.get("jobs", [])),
                    "errors": [(e.get("error_number"), e.get("error"), e.get("description"))
                               for e in doc.get("errors", [])]}
                print(f"{user}, a {seconds} s window: {answer}", flush=True)
        out = slurm(release, "sh", "-c", "sacct -X -a -n -S now-2hours -E now 2>&1 | head -3;"
                    " su alice -s /bin/sh -c 'sacct -X -a -n -S now-2hours -E now' 2>&1 | head -3")
        answers["sacct (root, then alice)"] = out.strip()
        print(f"sacct as root, then alice, a 2 h window:\n{out.strip()}", flush=True)
    finally:
        conf.write_text(saved)
        lab(release, "stop-dbd")
        lab(release, "start-dbd")
    return answers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", default="24.11")
    p.add_argument("--submit", type=int, default=0, help="jobs to submit first (arrays of 1,000)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the measures there")
    p.add_argument("--max-query-time-range", type=int, metavar="SECONDS",
                   help="also check MaxQueryTimeRange=SECONDS/60 minutes")
    args = p.parse_args(argv)
    slurm(args.release, "sacctmgr", "-i", "modify", "user", "exporter", "set",
          "adminlevel=administrator")
    if args.submit:
        submit(args.release, args.submit)
    rest = Rest(args.release)
    total = slurm(args.release, "sacct", "-X", "-D", "-a", "-n", "-S", "uts1000000", "-E", "now",
                  "-o", "JobID")
    print(f"Slurm {args.release}, /slurmdb/{rest.version}, "
          f"{len(total.split()):,} job records in slurmdbd; median of {args.runs} runs")
    print(HEADER)
    results = measure(args.release, rest, args.runs)
    extra = {}
    if args.max_query_time_range:
        extra = max_query_time_range(args.release, args.max_query_time_range)
    if args.json:
        args.json.write_text(json.dumps({"release": args.release, "version": rest.version,
                                         "measures": [asdict(m) for m in results],
                                         "max_query_time_range": extra}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

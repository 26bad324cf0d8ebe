"""Accounting conformance (issue 12): a known job mix on a lab with slurmdbd, and what
`sacct` says the exporter's accounting counters must be, job by job.

sacct is asked as the exporter asks slurmrestd: `-X` (no steps), `-D` (every run of a
requeued job: JOBCOND_FLAG_DUP), times not truncated to the window (sacct's default,
JOBCOND_FLAG_NO_TRUNC, src/sacct/options.c:259 in slurm-24-11-5-1), in its default window
(no state list). From its records come the events of a window [lo, hi): a
start when resources were allocated (AllocTRES set) at Start in the window, an end when
the record is in an end state at End in the window; then queue waits (Start - Eligible,
or - Submit when never eligible), ended jobs by partition and state, run times (End -
Start), and allocated CPU, GPU and memory x Elapsed per account and user.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.integration.lab import Lab
from tests.integration.serving import Samples

STATES = ("RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
          "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REQUEUED")
END_STATES = frozenset(s.lower() for s in STATES[2:])
QUEUE_WAIT_BUCKETS = (1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400,
                      172800, 345600, 604800)
RUN_BUCKETS = (10, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600,
               604800)
FIELDS = ("JobIDRaw,JobID,State,Partition,Account,User,Submit,Eligible,Start,End,ElapsedRaw,"
          "AllocTRES")
P = "slurm_accounting_"


@dataclass(frozen=True)
class Record:
    """One line of `sacct -X -D -P`, times as Unix seconds (0: unset)."""

    job_id: str  # JobID (array tasks as 12_3), for messages
    raw_id: str
    state: str  # lower-case base state: "cancelled" of "CANCELLED by 0"
    partition: str
    account: str
    user: str
    submit: int
    eligible: int
    start: int
    end: int
    elapsed: int
    tres: dict[str, int]  # AllocTRES, mem in bytes

    @property
    def started(self) -> bool:
        return bool(self.tres) and self.start > 0

    @property
    def gpus(self) -> dict[str, int]:
        """Allocated GPUs by type (gres/gpu:TYPE), else the untyped total under ""."""
        typed = {k[len("gres/gpu:"):]: v for k, v in self.tres.items() if k.startswith("gres/gpu:")}
        if typed:
            return typed
        return {"": self.tres["gres/gpu"]} if self.tres.get("gres/gpu") else {}


def _stamp(text: str) -> int:
    return int(text) if text.isdigit() else 0  # "Unknown", "None"


def _tres(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, text.split(",")):
        name, value = item.split("=", 1)
        if name == "mem":  # sacct prints MiB as 100M, GiB as 1G
            units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
            scale = units.get(value[-1])
            out[name] = int(float(value[:-1]) * scale) if scale else int(value)
        else:
            out[name] = int(value)
    return out


def parse_sacct(text: str) -> list[Record]:
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        (raw, job_id, state, part, account, user, submit, eligible, start, end, elapsed,
         tres) = line.split("|")
        records.append(Record(job_id, raw, state.split()[0].lower(), part, account, user,
                              _stamp(submit), _stamp(eligible), _stamp(start), _stamp(end),
                              int(elapsed or 0), _tres(tres)))
    return records


def sacct(lab: Lab, lo: int, hi: int) -> list[Record]:
    """The records sacct gives for [lo, hi] in its default window (no -s: jobs eligible
    before hi that had not ended before lo, as_mysql_jobacct_process.c:1655-1700 in
    slurm-24-11-5-1): a job never eligible (held, then cancelled) is not there, and has
    no events for the exporter either."""
    out = lab.slurm("env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-D", "-a", "-n", "-P",
                    "-S", f"uts{lo}", "-E", f"uts{hi}", "-o", FIELDS)
    return parse_sacct(out)


@dataclass
class Histogram:
    bounds: tuple[int, ...]
    values: list[tuple[str, float]] = field(default_factory=list)  # (job, value)

    def cumulative(self) -> list[int]:
        counts = [0] * (len(self.bounds) + 1)
        for _, v in self.values:
            counts[bisect_left(self.bounds, v)] += 1
        return [sum(counts[: i + 1]) for i in range(len(counts))]


@dataclass
class Expected:
    """What the exporter's accounting families must hold for the events of [lo, hi)."""

    lo: int
    hi: int
    waits: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # partition, account
    runs: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    ended: dict[tuple[str, str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    cpu: Counter[tuple[str, str]] = field(default_factory=Counter)  # account, user
    gpu: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # account, type, user
    memory: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)  # for messages


def expected(records: list[Record], lo: int, hi: int) -> Expected:
    exp = Expected(lo, hi)
    for r in records:
        job = (r.partition, r.account)
        if r.started and lo <= r.start < hi:
            wait = max(r.start - (r.eligible or r.submit), 0)
            exp.waits.setdefault(job, Histogram(QUEUE_WAIT_BUCKETS)).values.append((r.job_id, wait))
            exp.events.append(f"start {r.job_id} at {r.start} wait {wait} {job}")
        if r.state in END_STATES and r.end > 0 and lo <= r.end < hi:
            exp.ended[(r.partition, r.state, r.account)].append(r.job_id)
            exp.events.append(f"end {r.job_id} {r.state} at {r.end} {job}")
            if r.started:
                exp.runs.setdefault(job, Histogram(RUN_BUCKETS)).values.append(
                    (r.job_id, max(r.end - r.start, 0)))
                exp.cpu[(r.account, r.user)] += r.tres.get("cpu", 0) * r.elapsed
                exp.memory[(r.account, r.user)] += r.tres.get("mem", 0) * r.elapsed
                for kind, n in r.gpus.items():
                    exp.gpu[(r.account, kind, r.user)] += n * r.elapsed
    return exp


def _values(samples: Samples, name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    return {tuple(lab[n] for n in labels): v for lab, v in samples.get(name, [])}


def differences(exp: Expected, samples: Samples) -> list[str]:
    """Where the exporter's families (--accounting-per-account --accounting-per-user)
    differ from `exp`, each with the jobs behind the expected value; [] when equal."""
    diffs: list[str] = []

    def check(what: str, want: dict[tuple[str, ...], float], got: dict[tuple[str, ...], float],
              jobs: Mapping[Any, list[str]]) -> None:
        for key in sorted(set(want) | set(got)):
            if want.get(key, 0.0) != got.get(key, 0.0):
                diffs.append(f"{what}{key}: exporter {got.get(key)}, sacct {want.get(key)} "
                             f"(jobs {jobs.get(key, [])})")

    pa = ("partition", "account")
    for name, hists in (("job_queue_wait_seconds", exp.waits), ("job_run_seconds", exp.runs)):
        jobs = {k: [j for j, _ in h.values] for k, h in hists.items()}
        check(name + "_count", {k: float(len(h.values)) for k, h in hists.items()},
              _values(samples, P + name + "_count", pa), jobs)
        check(name + "_sum", {k: float(sum(v for _, v in h.values)) for k, h in hists.items()},
              _values(samples, P + name + "_sum", pa), jobs)
        want_b: dict[tuple[str, ...], float] = {}
        for k, h in hists.items():
            bounds: tuple[int | str, ...] = (*h.bounds, "+Inf")
            for bound, n in zip(bounds, h.cumulative(), strict=True):
                want_b[(*k, _le(bound))] = float(n)
        check(name + "_bucket", want_b,
              _values(samples, P + name + "_bucket", (*pa, "le")),
              {(*k, le): j for k, j in jobs.items() for le in {key[-1] for key in want_b}})
    check("jobs_ended_total", {k: float(len(v)) for k, v in exp.ended.items()},
          _values(samples, P + "jobs_ended_total", ("partition", "state", "account")),
          exp.ended)
    au = ("account", "user")
    check("cpu_seconds_total", {k: float(v) for k, v in exp.cpu.items()},
          _values(samples, P + "cpu_seconds_total", au), {})
    check("gpu_seconds_total", {k: float(v) for k, v in exp.gpu.items()},
          _values(samples, P + "gpu_seconds_total", ("account", "gpu_type", "user")), {})
    check("memory_byte_seconds_total", {k: float(v) for k, v in exp.memory.items()},
          _values(samples, P + "memory_byte_seconds_total", au), {})
    if diffs:
        diffs.append(f"events of [{exp.lo}, {exp.hi}) by sacct: " + "; ".join(exp.events))
    return diffs


def _le(bound: int | str) -> str:
    return bound if isinstance(bound, str) else f"{float(bound)}"


# ------------------------------------------------------------------ the job mix
class Mix:
    """Jobs of every outcome the lab can make quickly, submitted as root (account science,
    partitions debug and batch) and alice (physics). Node1 must be free (--gpus: 5 CPUs,
    1300 MB, 4 GPUs)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.ids: dict[str, str] = {}

    def job(self, name: str, *args: str, user: str = "root") -> str:
        # a time limit: the session lab's MAINT reservation (a day ahead) holds back jobs
        # without one (ReqNodeNotAvail)
        out = self.lab.run("exec", "--user", user, "--", "sbatch", "--parsable", "-J", name,
                           "-o", "/dev/null", "-e", "/dev/null", "-t", "5", *args)
        self.ids[name] = out.strip().split(";")[0]
        return self.ids[name]

    def state(self, job_id: str) -> str:
        out = self.lab.slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T")
        return out.split()[0] if out.split() else ""

    def await_state(self, job_id: str, *states: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.state(job_id) not in states:
            assert time.monotonic() < deadline, f"job {job_id} not {states} in {timeout} s"
            time.sleep(0.5)

    def first(self) -> None:
        """Short jobs that end by themselves, and long ones to end by hand (then())."""
        acct = ["-A", "science"]
        self.job("completes", *acct, "-p", "batch", "--wrap", "true")
        self.job("fails", *acct, "--wrap", "sleep 1; exit 1")
        self.job("array", *acct, "--array=1-3", "--wrap", "sleep 1")
        self.job("gpu_a100", *acct, "--gres=gpu:a100:1", "--wrap", "sleep 2")
        self.job("gpu_any", *acct, "--gpus=1", "--wrap", "sleep 1")
        self.job("alice", "-A", "physics", "-p", "batch", "--wrap", "sleep 1", user="alice")
        self.job("cancel_pending", *acct, "-H", "--wrap", "true")
        self.lab.slurm("scancel", self.ids["cancel_pending"])
        for name in ("timeout", "cancel_running", "requeue"):
            self.job(name, *acct, "--wrap", "sleep 300")

    def then(self) -> None:
        """End the long ones: a time-out (EndTime: slurmctld checks time limits every
        PERIODIC_TIMEOUT = 30 s, src/slurmctld/slurmctld.h:104), a cancel while running, a
        requeue (a REQUEUED record, then a new run, pending, cancelled)."""
        for name in ("timeout", "cancel_running", "requeue"):
            self.await_state(self.ids[name], "RUNNING")
        self.lab.slurm("scontrol", "update", f"jobid={self.ids['timeout']}", "EndTime=now+1")
        self.lab.slurm("scancel", self.ids["cancel_running"])
        self.lab.slurm("scontrol", "requeue", self.ids["requeue"])
        self.await_state(self.ids["requeue"], "PENDING")
        self.lab.slurm("scancel", self.ids["requeue"])

    def await_quiet(self, timeout: float = 90) -> None:
        """Until no job is left in the queue and slurmdbd has the final record of every
        job of the mix (a record may reach it late, or after an outage): then the events
        of a window are final."""
        deadline = time.monotonic() + timeout
        while True:
            live = self.lab.slurm("squeue", "-h", "-o", "%i").split()
            out = self.lab.slurm("env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-D", "-a", "-n",
                                 "-P", "-j", ",".join(self.ids.values()), "-o", "JobID,State,End")
            records = [line.split("|") for line in out.splitlines() if line]
            known = {job.split("_")[0] for job, _, _ in records}
            # after a slurmdbd outage a record may say COMPLETED with End still Unknown for
            # a few seconds (22.05 lab): not final yet
            open_ = [job for job, state, end in records
                     if state.split()[0].lower() not in END_STATES or not end.isdigit()]
            missing = set(self.ids.values()) - known
            if not live and not open_ and not missing:
                return
            assert time.monotonic() < deadline, (
                f"not quiet: in the queue {live}, in slurmdbd not ended {open_}, not in "
                f"slurmdbd {missing}")
            time.sleep(0.5)

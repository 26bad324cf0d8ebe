"""Job records of slurmdbd's `/slurmdb/vX/jobs`: the fields we read have the same names
in every generation (22.05's dbv0.0.36-38 and the data_parser's v0.0.40+).

Only their shapes differ: `state.current` is a string in 22.05 and a list of base and
flag words later; numbers may be `{set, infinite, number}` (steps' times in v0.0.40+),
which `Num` absorbs; TRES are lists of `{type, name, count}` everywhere (22.05's
parse.c TRES_LIST, the data_parser's TRES_STR). Where the values come from in Slurm:
- time.{submission,eligible,start,end,elapsed}: slurmdb_job_rec_t (dbv0.0.38/parse.c:
  322-349 at slurm-22-05-8-1; data_parser v0.0.42 parsers.c JOB fields at slurm-24-11-5-1);
- steps[].time.total.{seconds,microseconds}: the step's user + system CPU time
  (as_mysql_jobacct_process.c:1085 adds them; v0.0.42 parsers.c:7273-7274);
- steps[].tres.requested.max: the step's tres_usage_in_max, whose mem is sacct's MaxRSS,
  in bytes (dbv0.0.38/parse.c:2369-2373; v0.0.42 parsers.c:7278 and 3011-3020): named
  "requested" in both although it is a usage.
"""

from __future__ import annotations

import msgspec

from exporter.api.decoding import Num, number, optional_int
from exporter.api.jobrecord import state_words
from exporter.api.model import AccountedJob
from exporter.api.normalise import mib_to_bytes


class RawTres(msgspec.Struct, gc=False):
    type: str | None = None
    name: str | None = None
    count: Num = None


class _Times(msgspec.Struct, gc=False):
    submission: Num = None
    eligible: Num = None
    start: Num = None
    end: Num = None
    elapsed: Num = None


class _CpuTime(msgspec.Struct, gc=False):
    seconds: Num = None
    microseconds: Num = None


class _StepTimes(msgspec.Struct, gc=False):
    total: _CpuTime | None = None


class _Usage(msgspec.Struct, gc=False):
    max: list[RawTres] | None = None


class _StepTres(msgspec.Struct, gc=False):
    requested: _Usage | None = None  # tres_usage_in: RSS (see the module's docstring)


class RawStep(msgspec.Struct, gc=False):
    time: _StepTimes | None = None
    tres: _StepTres | None = None


class _State(msgspec.Struct, gc=False):
    current: list[str] | str | None = None


class _JobTres(msgspec.Struct, gc=False):
    allocated: list[RawTres] | None = None


class RawAccountedJob(msgspec.Struct, gc=False):
    job_id: int
    partition: str | None = None
    account: str | None = None
    user: str | None = None
    state: _State | None = None
    time: _Times | None = None
    tres: _JobTres | None = None
    steps: list[RawStep] | None = None


# Slurm's base job states as sacct prints them (job_state_string(), slurm.h's
# enum job_states); REQUEUED is a flag (JOB_REQUEUE) that sacct prints in their stead,
# and a requeued run's record keeps it (its base state is PENDING again).
BASE_STATES = (
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
    "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
)


def accounted_state(words: tuple[str, ...]) -> str:
    """sacct's State, lower case, from 22.05's string or v0.0.40+'s words."""
    upper = {w.strip().upper() for w in words if w}
    if "REQUEUED" in upper:
        return "requeued"
    for base in BASE_STATES:
        if base in upper:
            return base.lower()
    return "unknown"


def _time(value: Num) -> int:
    found = number(value)
    return int(found) if found is not None and found > 0 else 0


def _gpus(tres: list[RawTres]) -> dict[str, int]:
    """Allocated GPUs by type: `gres/gpu:TYPE` entries where there are, else the untyped
    `gres/gpu` total under "" (slurmdbd stores both: the total and each type's)."""
    typed: dict[str, int] = {}
    untyped = 0
    for t in tres:
        if t.type != "gres" or not t.name:
            continue
        count = optional_int(t.count) or 0
        if t.name == "gpu":
            untyped += count
        elif t.name.startswith("gpu:"):
            kind = t.name[4:]
            typed[kind] = typed.get(kind, 0) + count
    if typed:
        return typed
    return {"": untyped} if untyped else {}


def _tres_count(tres: list[RawTres], kind: str) -> int:
    for t in tres:
        if t.type == kind:
            return max(optional_int(t.count) or 0, 0)
    return 0


def _cpu_used(steps: list[RawStep]) -> float | None:
    total, seen = 0.0, False
    for s in steps:
        cpu = s.time.total if s.time else None
        if cpu is None:
            continue
        seen = True
        total += (number(cpu.seconds) or 0) + (number(cpu.microseconds) or 0) / 1e6
    return total if seen else None


def _max_rss(steps: list[RawStep]) -> int | None:
    found: int | None = None
    for s in steps:
        usage = s.tres.requested.max if s.tres and s.tres.requested else None
        for t in usage or ():
            count = optional_int(t.count) if t.type == "mem" else None
            if count is not None and count >= 0 and (found is None or count > found):
                found = count
    return found


def to_accounted_job(raw: RawAccountedJob) -> AccountedJob:
    times = raw.time or _Times()
    alloc = (raw.tres.allocated if raw.tres else None) or []
    steps = raw.steps
    return AccountedJob(
        job_id=raw.job_id,
        submit=_time(times.submission),
        eligible=_time(times.eligible),
        start=_time(times.start),
        end=_time(times.end),
        elapsed=_time(times.elapsed),
        state=accounted_state(state_words(raw.state.current if raw.state else None)),
        partition=raw.partition or "",
        account=raw.account or "",
        user=raw.user or "",
        started=bool(alloc) and _time(times.start) > 0,
        cpus=_tres_count(alloc, "cpu"),
        # TRES mem counts MiB (as sacct's AllocTRES mem=100M)
        memory_bytes=mib_to_bytes(_tres_count(alloc, "mem")),
        gpus=_gpus(alloc),
        cpu_used_seconds=_cpu_used(steps) if steps else None,
        max_rss_bytes=_max_rss(steps) if steps else None,
    )


# --- the query ---------------------------------------------------------------------
# The states asked for: every state but PENDING. slurmdbd's per-state conditions
# (_state_time_string(), src/plugins/accounting_storage/mysql/as_mysql_jobacct_process.c
# :384-465 at slurm-24-11-5-1; :361-440 at slurm-22-05-8-1) then give every record that
# was running at some time of [S, E] (RUNNING: started before E, and ended after S or
# still running, whatever its state now), was suspended then (SUSPENDED), or ended in
# [S, E] (each end state: time_end between S and E): every job that started or ended in
# the window. Without a state (:1655-1700), slurmdbd would also send every job pending
# and eligible in the window, at every poll.
QUERY_STATES: tuple[tuple[str, int], ...] = (
    # (name, number in slurm.h's enum job_states; REQUEUED: the JOB_REQUEUE flag, bit 10)
    ("RUNNING", 1), ("SUSPENDED", 2), ("COMPLETED", 3), ("CANCELLED", 4), ("FAILED", 5),
    ("TIMEOUT", 6), ("NODE_FAIL", 7), ("PREEMPTED", 8), ("BOOT_FAIL", 9),
    ("DEADLINE", 10), ("OUT_OF_MEMORY", 11), ("REQUEUED", 1024),
)


def state_query(numbers: bool = False, repeat: bool = False, requeued: bool = True) -> str:
    """The `state` parameter asking for QUERY_STATES.

    slurmrestd's query parser refuses a bare "," (only RFC 3986's unreserved characters
    pass undecoded: serializer_url_encoded.c:165-171, the same at slurm-22-05-8-1 and
    slurm-24-11-5-1) and makes a repeated key a list (:98-118). The data_parser (v0.0.40+)
    takes a list of states, one each, and a string as one state ("Unknown flag
    RUNNING,COMPLETED" otherwise: data_parser/v0.0.42/parsing.c:386-392): `repeat`.
    22.05 splits a string on commas (dbv0.0.38/jobs.c _add_list_job_state) but copies a
    list's words as they are: one string, its commas encoded. 22.05's dbv0.0.36 and
    dbv0.0.37 copy the words as they are into the state_list (slurm_addto_char_list(),
    dbv0.0.36/jobs.c:125,175) and slurmdbd reads each with slurm_atoul()
    (as_mysql_jobacct_process.c:1378-1380): a name would read as 0, PENDING: `numbers`.
    22.05's dbv0.0.38 cannot ask for REQUEUED (`requeued` False): its name is masked with
    JOB_STATE_BASE into 0, PENDING, and its number (1024) is past JOB_END and ends the
    list (dbv0.0.38/jobs.c:153-172, lab: the pending jobs came back). A requeued run's
    record comes all the same by the RUNNING condition, which does not look at the state
    once the record has an end: it ran in the window.
    """
    words = [
        str(n) if numbers else name
        for name, n in QUERY_STATES
        if requeued or name != "REQUEUED"
    ]
    if repeat:
        return "&".join(f"state={w}" for w in words)
    return "state=" + "%2C".join(words)

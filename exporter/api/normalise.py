"""Generation-neutral helpers: Slurm's state words, TRES and GRES strings, units.

Adapters turn their raw Structs into plain values and call these, so the rules
that decide what a collector sees live in one place whatever the API version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from exporter.api.model import ANY_GPU_TYPE, Node

MIB = 1024 * 1024
_UNIT = {"": 1, "K": 1024, "M": MIB, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def mib_to_bytes(mib: int | None) -> int:
    return 0 if mib is None else int(mib) * MIB


def usec_to_seconds(usec: float) -> float:
    return usec / 1_000_000


# --- job state ------------------------------------------------------------------
# Mirrors job_state_string() in SchedMD/slurm src/common/slurm_protocol_defs.c
# (checked at master 284c3b95, 2026-08, and tag slurm-22-05-8-1): the first flag
# of this list that is set wins, else the base state is printed. That is what
# `squeue -o %T` shows. Flags outside this list (LAUNCH_FAILED, RECONFIG_FAIL,
# POWER_UP_NODE, ...) are never printed. EXPEDITING exists from 26.05 on.
_JOB_FLAGS_SHOWN = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "EXPEDITING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
)
JOB_BASE_STATES = (
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
)


def job_state(words: Iterable[str]) -> str:
    """squeue's %T, lower case, from the state words slurmrestd sent.

    22.05 sends the already-decided word (`"COMPLETING"`); v0.0.40+ a list of
    base and flags (`["RUNNING", "COMPLETING"]`). A word we do not know is
    passed through in lower case rather than dropped, unless a known state is
    also present (an unknown word is most likely a new flag).
    """
    upper = [w.strip().upper() for w in words if w and w.strip()]
    present = set(upper)
    for flag in _JOB_FLAGS_SHOWN:
        if flag in present:
            return flag.lower()
    for base in JOB_BASE_STATES:
        if base in present:
            return base.lower()
    return upper[0].lower() if upper else "unknown"


def job_is_pending(words: Iterable[str]) -> bool:
    """Whether the base state is PENDING (flags such as REQUEUED do not matter)."""
    return any(w.strip().upper() == "PENDING" for w in words if w)


# --- node state -----------------------------------------------------------------
# Mirrors node_state_string() in SchedMD/slurm src/common/slurm_protocol_defs.c
# (master 284c3b95; 22.05.8 differs only in minor cases noted below). That
# function returns e.g. "DRAINING*" or "IDLE~"; `sinfo -o %T` prints it lower
# case, and we drop the suffix character, so the flags that only choose a suffix
# (NOT_RESPONDING *, POWERED_DOWN ~, POWERING_UP #, POWER_DOWN !, POWERING_DOWN %,
# MAINTENANCE $, REBOOT_REQUESTED @, REBOOT_ISSUED ^, PLANNED on MIXED -,
# COMPLETING on ALLOCATED +) leave the base word.
NODE_BASE_STATES = frozenset({"UNKNOWN", "DOWN", "IDLE", "ALLOCATED", "ERROR", "MIXED", "FUTURE"})
# Data-parser words that only restate other flags (POWER_DOWN|POWER_DRAIN,
# POWER_DOWN|POWERED_DOWN); ignoring them keeps "exactly this flag" tests true.
_NODE_ALIAS_FLAGS = frozenset({"POWER_DOWN_ASAP", "POWER_DOWN_FORCE"})
# States whose whole value is one flag on an UNKNOWN base (`inx == FLAG` in C;
# REBOOT_ISSUED alone is caught earlier as "reboot", in C too).
_NODE_SOLE_FLAG_WORD = {
    "REBOOT_CANCELED": "cancel_reboot",
    "CLOUD": "cloud",
    "EXTERNAL": "external",
    "POWER_DOWN": "power_down",
    "POWER_UP": "power_up",
    "POWERING_DOWN": "powering_down",
    "POWERED_DOWN": "powered_down",
    "POWERING_UP": "powering_up",
    "UNDRAIN": "undrain",
    "DYNAMIC_FUTURE": "dynamic_future",
    "DYNAMIC_NORM": "dynamic_norm",
}
# Flags that make node_state_string() add a suffix to the base word (any one
# of them means "base word" after the suffix is dropped).
_NODE_SUFFIX_FLAGS = frozenset(
    {
        "MAINTENANCE",
        "REBOOT_ISSUED",
        "REBOOT_REQUESTED",
        "POWERING_UP",
        "POWERING_DOWN",
        "POWERED_DOWN",
        "POWER_DOWN",
        "NOT_RESPONDING",
    }
)

# Every flag word node_state_string() knows (22.05 and current), to tell a
# flag from a base word we have never seen.
_NODE_KNOWN_FLAGS = frozenset(
    {
        "BLOCKED",
        "CLOUD",
        "COMPLETING",
        "DRAIN",
        "DYNAMIC_FUTURE",
        "DYNAMIC_NORM",
        "EXTERNAL",
        "FAIL",
        "INVALID_REG",
        "MAINTENANCE",
        "NOT_RESPONDING",
        "PERFCTRS",
        "PLANNED",
        "POWER_DOWN",
        "POWER_DRAIN",
        "POWER_UP",
        "POWERED_DOWN",
        "POWERING_DOWN",
        "POWERING_UP",
        "REBOOT_CANCELED",
        "REBOOT_ISSUED",
        "REBOOT_REQUESTED",
        "RESERVED",
        "RESUME",
        "UNDRAIN",
    }
)


def node_state(words: Iterable[str]) -> str:
    """sinfo's %T, lower case, without suffix, from base + flag words (any case).

    22.05 gives `state: "allocated"` plus `state_flags: [...]` (v0.0.36 has no
    flags at all); v0.0.40+ a list such as `["IDLE", "DRAIN"]`. Both are passed
    here as one list of words.
    """
    upper = [w.strip().upper() for w in words if w and w.strip()]
    bases = [w for w in upper if w in NODE_BASE_STATES]
    flags = {w for w in upper if w not in NODE_BASE_STATES} - _NODE_ALIAS_FLAGS
    if not bases and not flags:
        return upper[0].lower() if upper else "unknown"
    unknown = flags - _NODE_KNOWN_FLAGS
    if not bases and unknown:
        # e.g. v0.0.36's "invalid" or a base word newer than this code
        return next(w for w in upper if w in unknown).lower()
    base = bases[0] if bases else "UNKNOWN"
    return _node_state_string(base, flags)


def _node_state_string(base: str, flags: set[str]) -> str:
    drain = "DRAIN" in flags
    comp = "COMPLETING" in flags
    maint = "MAINTENANCE" in flags
    reboot = "REBOOT_REQUESTED" in flags
    reboot_issued = "REBOOT_ISSUED" in flags
    busy = base in ("ALLOCATED", "MIXED")

    if "INVALID_REG" in flags:
        return "inval"
    if maint and not (drain or busy or base == "DOWN"):
        return "maint"
    if (reboot or reboot_issued) and not busy:
        return "reboot"
    if drain:
        return "draining" if comp or busy else "drained"
    if "FAIL" in flags:
        # MIXED+FAIL is "failing" from Slurm 25.11.1 on, "fail" before: as_released()
        return "failing" if comp or busy else "fail"
    if base == "UNKNOWN" and len(flags) == 1:
        sole = _NODE_SOLE_FLAG_WORD.get(next(iter(flags)))
        if sole:
            return sole
    if base == "DOWN":
        return "down"
    if base == "ALLOCATED":
        return "allocated"
    if comp:
        return "completing"
    if base == "IDLE":
        if flags & _NODE_SUFFIX_FLAGS:
            return "idle"
        for flag, word in (
            ("RESERVED", "reserved"),
            ("PERFCTRS", "perfctrs"),  # 22.05 only
            ("BLOCKED", "blocked"),
            ("PLANNED", "planned"),
        ):
            if flag in flags:
                return word
        return "idle"
    if base == "MIXED":
        return "mixed"
    if base == "FUTURE":
        return "future"
    if "RESUME" in flags:
        return "resume"
    if base == "UNKNOWN":
        return "unknown"
    return base.lower()  # ERROR and anything newer: Slurm prints "?"


# node_state_string() printed MIXED+FAIL as "FAIL" until Slurm 25.11.0: its FAILING
# test was `comp_flag || base == ALLOCATED` (slurm-22-05-11-1 to slurm-25-11-0-1), and
# commit aa2733d6ad "Return FAILING if node state is FAIL and MIXED" added MIXED in
# 25.11.1 and 26.05.0. sinfo prints what its own (the cluster's) release says.
_MIXED_FAILING_SINCE = (25, 11, 1)
_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?", re.ASCII)


def _release_before(release: str, version: tuple[int, int, int]) -> bool:
    match = _RELEASE.match(release.strip())
    if not match:
        return False  # unknown: today's rule
    return tuple(int(g or 0) for g in match.groups()) < version


def as_released(nodes: list[Node], release: str) -> list[Node]:
    """Nodes with the state words sinfo of this Slurm release prints (see node_state)."""
    if not any(n.state == "failing" for n in nodes) or not _release_before(
        release, _MIXED_FAILING_SINCE
    ):
        return nodes
    return [
        msgspec.structs.replace(n, state="fail")
        if n.state == "failing" and "MIXED" in n.flags and "COMPLETING" not in n.flags
        else n
        for n in nodes
    ]


# --- numbers with units -----------------------------------------------------------
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)\s*$", re.IGNORECASE | re.ASCII)


def parse_count(text: str) -> int | None:
    """A count such as `4`, or with Slurm's 1024-based suffix (`2K`); None if not one."""
    if text.isascii() and text.isdigit():  # the common case, skips the regex (~100k calls a scrape)
        return int(text)
    match = _AMOUNT.match(text)
    if not match:
        return None
    return int(float(match.group(1)) * _UNIT[match.group(2).upper()])


def parse_memory(text: str) -> int | None:
    """TRES memory (`100M`, `1.50G`, `512K`; bare numbers are MiB) in bytes."""
    match = _AMOUNT.match(text)
    if not match:
        return None
    unit = match.group(2).upper() or "M"
    return int(float(match.group(1)) * _UNIT[unit])


# --- TRES strings: "cpu=1,mem=100M,node=1,billing=1,gres/gpu=1,gres/gpu:a100=1" ---


def parse_tres(text: str | None) -> dict[str, str]:
    """A TRES string as {name: raw value}; malformed items are skipped."""
    result: dict[str, str] = {}
    for item in (text or "").split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            result[name.strip()] = value.strip()
    return result


def tres_count(tres: dict[str, str], name: str) -> int | None:
    value = tres.get(name)
    return None if value is None else parse_count(value)


def tres_memory(tres: dict[str, str]) -> int | None:
    value = tres.get("mem")
    return None if value is None else parse_memory(value)


def tres_gpus(tres: dict[str, str]) -> dict[str, int] | None:
    """GPUs by type from `gres/gpu=N` and `gres/gpu:TYPE=N`; None if none are listed.

    Typed entries are counted as such; whatever of the untyped total they do
    not account for goes to ANY_GPU_TYPE.
    """
    total: int | None = None
    typed: dict[str, int] = {}
    for name, value in tres.items():
        if name == "gres/gpu":
            total = parse_count(value)
        elif name.startswith("gres/gpu:"):
            count = parse_count(value)
            if count:
                gpu_type = name[len("gres/gpu:") :]
                typed[gpu_type] = typed.get(gpu_type, 0) + count
    if total is None and not typed:
        return None
    remainder = (total or 0) - sum(typed.values())
    if remainder > 0:
        typed[ANY_GPU_TYPE] = typed.get(ANY_GPU_TYPE, 0) + remainder
    return typed


# --- GRES strings: "gpu:a100:2(S:0-1),gpu:h100:1(IDX:2)", "gres/gpu:h100:2" -------


def split_outside_parens(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (`gpu:2(IDX:0,2),mps:100`)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


_TRAILING_PARENS = re.compile(r"\([^()]*\)\s*$")
# GPUs without an index bitmap (no File=) are written "gpu:a100(CNT:2)" in gres_detail
# (src/stepmgr/gres_stepmgr.c:2007 at slurm-24-11-7-1; src/slurmctld/gres_ctld.c:1745
# at slurm-22-05-11-1): the count is in the parentheses.
_CNT_PARENS = re.compile(r"\(CNT:(\d+)\)\s*$")


def _gres_item(item: str) -> tuple[str, str, int] | None:
    """(name, type, count) of `gpu:a100:2(IDX:0-1)`, `gpu:4`, `gpu:a100`, `gpu`.

    Also takes the TRES-style prefixes of tres_per_* (`gres/gpu:...`, and
    22.05's `gres:gpu:...`). Untyped and `(null)` types become ANY_GPU_TYPE.
    """
    # Drop a trailing "(IDX:0-1)" / "(S:0-1)" / "(CNT:2)"; "(null)" as a type stays.
    cnt = _CNT_PARENS.search(item)
    core = _TRAILING_PARENS.sub("", item).strip()
    for prefix in ("gres/", "gres:"):
        if core.startswith(prefix):
            core = core[len(prefix) :]
            break
    parts = core.split(":")
    name = parts[0].strip()
    if not name:
        return None
    gres_type, count_text = "", cnt.group(1) if cnt else "1"
    if len(parts) == 2:
        # One field: a count if it reads as one, else a type with count 1.
        if parse_count(parts[1]) is not None:
            count_text = parts[1]
        else:
            gres_type = parts[1]
    elif len(parts) >= 3:
        gres_type, count_text = ":".join(parts[1:-1]), parts[-1]
    count = parse_count(count_text)
    if count is None:
        return None
    gres_type = gres_type.strip()
    if not gres_type or gres_type == "(null)":
        gres_type = ANY_GPU_TYPE
    return name, gres_type, count


def gres_gpus(text: str | None) -> dict[str, int]:
    """GPUs by type in a GRES list (node `gres`/`gres_used`, one gres_detail item,
    or a tres_per_* value). Only `gpu`; zero counts are left out."""
    result: dict[str, int] = {}
    for item in split_outside_parens(text or ""):
        parsed = _gres_item(item)
        if parsed and parsed[0] == "gpu" and parsed[2] > 0:
            _, gpu_type, count = parsed
            result[gpu_type] = result.get(gpu_type, 0) + count
    return result


def add_counts(into: dict[str, int], more: dict[str, int], factor: int = 1) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count * factor


# --- what a job holds or asks for -------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobFacts:
    """The raw job fields the resource rules need, already unwrapped."""

    pending: bool
    tres_alloc: str = ""
    tres_req: str = ""
    cpus: int | None = None
    node_count: int | None = None
    tasks: int | None = None
    memory_per_node_mib: int | None = None
    memory_per_cpu_mib: int | None = None
    tres_per_job: str = ""
    tres_per_node: str = ""
    tres_per_task: str = ""
    gres_detail: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class JobResources:
    cpus: int
    memory_bytes: int
    nodes: int
    gpus: dict[str, int] = field(default_factory=dict)


def job_resources(facts: JobFacts) -> JobResources:
    """Allocated resources when the job holds (or held) an allocation, else requested.

    A job holds an allocation when it is not pending and slurmctld filled
    tres_alloc_str (running, suspended, completing, and finished jobs that did
    run). A job that never ran (pending, or cancelled/failed before starting)
    reports what it asked for.
    """
    holds = not facts.pending and bool(facts.tres_alloc.strip())
    tres = parse_tres(facts.tres_alloc if holds else facts.tres_req)

    cpus = tres_count(tres, "cpu")
    if cpus is None:
        cpus = facts.cpus or 0
    nodes = facts.node_count if facts.node_count is not None else tres_count(tres, "node")
    nodes = nodes or 0

    memory = tres_memory(tres)
    if memory is None:
        if facts.memory_per_node_mib is not None:
            memory = mib_to_bytes(facts.memory_per_node_mib) * max(nodes, 1)
        elif facts.memory_per_cpu_mib is not None:
            memory = mib_to_bytes(facts.memory_per_cpu_mib) * max(cpus, 1)
        else:
            memory = 0

    gpus = _allocated_gpus(tres, facts.gres_detail) if holds else _requested_gpus(facts, nodes)
    return JobResources(cpus=cpus, memory_bytes=memory, nodes=nodes, gpus=gpus)


def _allocated_gpus(alloc_tres: dict[str, str], gres_detail: Sequence[str]) -> dict[str, int]:
    # gres/gpu shows in TRES strings only when accounting tracks it
    # (AccountingStorageTRES), and its types only when each gres/gpu:TYPE is tracked
    # too: with just gres/gpu, "gres/gpu=2" has no type. gres_detail (one string per
    # node, "gpu:a100:2(IDX:0-1)") names the types whenever the job holds GPUs, so it
    # decides where the TRES string leaves GPUs untyped.
    from_tres = tres_gpus(alloc_tres)
    if from_tres is not None and ANY_GPU_TYPE not in from_tres:
        return from_tres
    gpus: dict[str, int] = {}
    for per_node in gres_detail:
        add_counts(gpus, gres_gpus(per_node))
    # GPUs the TRES total has but gres_detail does not name stay counted, untyped
    missing = sum((from_tres or {}).values()) - sum(gpus.values())
    if missing > 0:
        add_counts(gpus, {ANY_GPU_TYPE: missing})
    return gpus


def _requested_gpus(facts: JobFacts, nodes: int) -> dict[str, int]:
    per_job = gres_gpus(facts.tres_per_job)
    if per_job:
        return per_job
    gpus: dict[str, int] = {}
    # For a pending job the node count is the requested minimum, so this is
    # the least the job will get.
    add_counts(gpus, gres_gpus(facts.tres_per_node), max(nodes, 1))
    if not gpus:
        tasks = facts.tasks if facts.tasks and facts.tasks > 0 else 1
        add_counts(gpus, gres_gpus(facts.tres_per_task), tasks)
    return gpus


# --- job arrays ---------------------------------------------------------------------
# slurmctld sends a pending array's tasks as a hex bitmap; the client library (here:
# slurmrestd) turns it into array_task_string with xlate_array_task_str() in
# src/common/slurm_protocol_defs.c (slurm-22-05-11-1 to slurm-26-05-3-1): "a-b:s" when
# more than 5 set bits over more than 10 ids are evenly spaced ("1-999:2"), else
# bit_fmt()'s ranges ("1-4,7-999"), cut to SLURM_BITSTR_LEN characters (64 unless set in
# slurmrestd's environment; 0: no limit) with its last three replaced by "...", then
# "%N" when array_max_tasks limits the running tasks ("1-1000%10").
_TASK_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", re.ASCII)


def array_task_count(text: str) -> int | None:
    """Tasks listed in an array_task_string; None if it lists none.

    A string cut short with "..." counts the items it shows whole (its last one may be
    cut, so it is left out): a lower bound.
    """
    body = text.split("%", 1)[0].strip()
    items = body.split(",")
    if body.endswith("..."):
        items = items[:-1]
    count = 0
    for item in items:
        match = _TASK_RANGE.match(item.strip())
        if not match:
            continue
        first, end, step = (int(g) if g else 0 for g in match.groups())
        end, step = (end if match.group(2) else first), step or 1
        # the range includes its end (bit_fls); squeue -r drops it in step form:
        # bitfmt2int() in src/common/bitstring.c loops `i < end_task_id`
        if end >= first:
            count += (end - first) // step + 1
    return count or None


# --- meta ---------------------------------------------------------------------------
_VERSION_IN_PLUGIN = re.compile(r"(v\d+\.\d+\.\d+)\s*$")


def version_from_plugin(text: str | None) -> str | None:
    """`v0.0.45` from `data_parser/v0.0.45` or `openapi/v0.0.38`; None otherwise."""
    match = _VERSION_IN_PLUGIN.search(text or "")
    return match.group(1) if match else None

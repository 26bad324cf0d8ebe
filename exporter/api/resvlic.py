"""Wire types of `/reservations` and `/licenses`, the same in every API version.

Both generations send the same keys (22.05's v0.0.37/v0.0.38 in
src/plugins/openapi/v0.0.38/reservations.c _dump_res() and diag.c
_op_handler_licenses(); 23.11+ in src/plugins/data_parser/v0.0.4x/parsers.c
PARSER_ARRAY(RESERVATION_INFO) and PARSER_ARRAY(LICENSE)); only the numbers differ,
plain in 22.05 and `{set, infinite, number}` from v0.0.40 on, which `Num` takes both
of. Licenses' LastConsumed, LastDeficit and LastUpdate exist from v0.0.40 on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import msgspec

from exporter.api.decoding import Num, Wrapped, integer, number, optional_int
from exporter.api.model import License, Reservation


class RawReservation(msgspec.Struct, gc=False):
    name: str
    start_time: Num = None
    end_time: Num = None
    node_count: Num = None
    core_count: Num = None
    node_list: str | None = None
    flags: list[str] | None = None
    partition: str | None = None


INFINITE = 0xFFFFFFFF  # Slurm's INFINITE (32 bits)


class RawLicense(msgspec.Struct, gc=False):
    name: str = msgspec.field(name="LicenseName")
    total: Num = msgspec.field(default=None, name="Total")
    used: Num = msgspec.field(default=None, name="Used")
    free: Num = msgspec.field(default=None, name="Free")
    reserved: Num = msgspec.field(default=None, name="Reserved")
    remote: bool | None = msgspec.field(default=None, name="Remote")
    last_consumed: Num = msgspec.field(default=None, name="LastConsumed")
    last_deficit: Num = msgspec.field(default=None, name="LastDeficit")
    last_update: Num = msgspec.field(default=None, name="LastUpdate")
    nodes: str | None = msgspec.field(default=None, name="Nodes")  # v0.0.44+


def reservation(raw: RawReservation) -> Reservation:
    end = number(raw.end_time)
    return Reservation(
        name=raw.name,
        start_time=float(integer(raw.start_time)),
        end_time=None if end is None else float(end),
        node_count=integer(raw.node_count),
        core_count=integer(raw.core_count),
        nodes=expand_hostlist(raw.node_list or ""),
        flags=scontrol_order(f.upper() for f in raw.flags or ()),
        partition=raw.partition or "",
    )


def license_(raw: RawLicense) -> License:
    updated = optional_int(raw.last_update)
    return License(
        name=raw.name,
        total=_count(raw.total),
        used=integer(raw.used),
        free=_count(raw.free),
        reserved=integer(raw.reserved),
        remote=bool(raw.remote),
        last_consumed=optional_int(raw.last_consumed),
        last_deficit=optional_int(raw.last_deficit),
        # 0: never updated (a local license), as scontrol leaves LastUpdate out
        last_update=float(updated) if updated else None,
        nodes=raw.nodes or "",
    )


def _count(value: Num) -> float:
    """Total or Free: INFINITE (25.11+, and then Free too: slurm_protocol_pack.c
    _unpack_license_info_msg) is math.inf, not the 0 of an unset number. Licenses are
    plain UINT32s, so it comes as 4294967295 (data_parser/v0.0.44/parsers.c
    DUMP_FUNC(UINT32) at slurm-25-11-0-1)."""
    if value == INFINITE or (isinstance(value, Wrapped) and value.infinite):
        return math.inf
    return integer(value)


# The flags in the order scontrol prints them: reservation_flags_string() in
# src/common/slurm_protocol_defs.c (lines 3005-3165 at slurm-24-11-5-1; the same order in
# 22.05, which has FIRST_CORES, to 26.05, which adds FORCE_START). slurmrestd v0.0.40+
# sends its parser's order (data_parser PARSER_FLAG_ARRAY(RESERVATION_FLAGS): WEEKLY
# before IGNORE_JOBS). scontrol prints PURGE_COMP=<time> when a purge time is set: the
# label keeps the bare word.
_SCONTROL_FLAGS = {
    flag: i
    for i, flag in enumerate((
        "MAINT", "NO_MAINT", "FLEX", "OVERLAP", "IGNORE_JOBS", "HOURLY", "NO_HOURLY",
        "DAILY", "NO_DAILY", "WEEKDAY", "WEEKEND", "WEEKLY", "NO_WEEKLY", "SPEC_NODES",
        "ALL_NODES", "ANY_NODES", "NO_ANY_NODES", "STATIC", "NO_STATIC", "PART_NODES",
        "NO_PART_NODES", "FIRST_CORES", "TIME_FLOAT", "REPLACE", "REPLACE_DOWN",
        "PURGE_COMP", "NO_HOLD_JOBS_AFTER_END", "MAGNETIC", "NO_MAGNETIC", "USER_DELETE",
        "NO_USER_DELETE", "FORCE_START",
    ))
}


def scontrol_order(flags: Iterable[str]) -> tuple[str, ...]:
    """The flags in scontrol's order; those scontrol never prints (SKIP, NO_FLEX, ...)
    last, in slurmrestd's order."""
    return tuple(sorted(flags, key=lambda f: _SCONTROL_FLAGS.get(f, len(_SCONTROL_FLAGS))))


# "node[01-03,7]": a prefix, a bracket of ranges and numbers, a suffix
_BRACKET = re.compile(r"^([^\[]*)\[([^\]]*)\](.*)$")


def expand_hostlist(text: str) -> tuple[str, ...]:
    """Slurm's host list ("node[1-3,5],gpu01") as names, in order; ranges keep their
    zero padding ("n[08-10]": n08, n09, n10), as Slurm's hostlist.c does."""
    names: list[str] = []
    for item in _split_top(text):
        names.extend(_expand_item(item))
    return tuple(names)


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    items: list[str] = []
    depth = start = 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [i.strip() for i in items if i.strip()]


def _expand_item(item: str) -> list[str]:
    match = _BRACKET.match(item)
    if match is None:
        return [item]
    prefix, ranges, suffix = match.groups()
    names: list[str] = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        if not high:
            high = low
        if not (low.isdigit() and high.isdigit()):
            return [item]  # not a range we know: the text as one name
        width = len(low) if low.startswith("0") else 0
        for n in range(int(low), int(high) + 1):
            names.extend(f"{prefix}{n:0{width}d}{rest}" for rest in _expand_item(suffix) or [""])
    return names

"""slurmdbd's own statistics, `/slurmdb/vX/diag` (what `sacctmgr show stats` prints).

Two shapes of `rollups` (checked against the recorded answers, tests/fixtures/*-slurmdbd):
- v0.0.36-v0.0.40: a list of `{type, last_run, last_cycle, max_cycle, total_time,
  total_cycles}`, one item per slot of slurmdbd's rollup statistics that has run
  (time_total != 0), the slot named "internal" (0), "user" (1) or "unknown" (2)
  (src/plugins/openapi/dbv0.0.38/parse.c:2530-2544 in slurm-22-05-8-1,
  src/plugins/data_parser/v0.0.40/parsers.c:1518-1531 in slurm-24-11-5-1);
- v0.0.41+: `{hourly, daily, monthly}`, each `{count, last_run, duration{last, max, time}}`:
  the same three slots, named by their index DBD_ROLLUP_HOUR/DAY/MONTH (0/1/2)
  (src/plugins/data_parser/v0.0.41/parsers.c:9412-9426 in slurm-24-11-5-1).
So "internal" is the API's later "hourly", "user" its "daily", "unknown" its "monthly":
what the slots hold is not periods. slurmdbd fills slot 0 with its own rollup thread,
which runs at start and then at the start of every hour and does the hourly, daily and
monthly rollups due in one pass, and slot 1 with the rollups users ask for (`sacctmgr
roll`, DBD_ROLL_USAGE); slot 2 stays empty (handle_rollup_stats(), "we use 'type' as 0
for the DBD thread running this and 1 as a rpc call to roll_usage":
src/slurmdbd/slurmdbd.c:441-449 and :855, src/slurmdbd/proc_req.c:2853 in
slurm-24-11-5-1; the same in 22.05.8, slurmdbd.c:757, proc_req.c:2860, and 26.05.3,
slurmdbd.c:923, proc_req.c:2773). `sacctmgr show stats` prints them as "Internal DBD
rollup" and "User RPC rollup call" (src/sacctmgr/config_functions.c:273-283).

Units: every duration is in microseconds, although the API's descriptions say seconds:
the rollup times are DELTA_TIMER / TIMER_DURATION_USEC() (src/common/timers.h:59, "raw
time difference in usec"), the RPC times add DELTA_TIMER up (proc_req.c:3515,3525;
slurm/slurmdb.h:1437 "total usecs this object"), and `sacctmgr show stats` says "All
statistics are in microseconds" (config_functions.c:270). On the 22.05 lab, `sacctmgr roll
2024-01-01T00:00:00` took 7.5 s of wall time and the "user" slot's last_cycle became
7356140.
"""

from __future__ import annotations

import msgspec

from exporter.api.decoding import Num, integer, number
from exporter.api.model import ROLLUP_PERIODS, Rollup, RpcStat, SlurmdbdDiag
from exporter.api.normalise import usec_to_seconds

# v0.0.36-v0.0.40's names of the three slots, in slot order (= ROLLUP_PERIODS' order)
_SLOT_TYPES = ("internal", "user", "unknown")


class RollupItem(msgspec.Struct, gc=False):
    """v0.0.36-v0.0.40: one slot that has run."""

    type: str | None = None
    last_run: Num = None  # Unix time
    last_cycle: Num = None  # microseconds, like every duration here
    max_cycle: Num = None
    total_time: Num = None
    total_cycles: Num = None


class _Duration(msgspec.Struct, gc=False):
    last: Num = None
    max: Num = None
    time: Num = None  # the total


class RollupSlot(msgspec.Struct, gc=False):
    """v0.0.41+: one slot, whether it ran or not."""

    count: Num = None
    last_run: Num = None
    duration: _Duration | None = None


class RollupSlots(msgspec.Struct, gc=False):
    hourly: RollupSlot | None = None
    daily: RollupSlot | None = None
    monthly: RollupSlot | None = None


class _RpcTime(msgspec.Struct, gc=False):
    total: Num = None  # microseconds


class _Rpc(msgspec.Struct, gc=False):
    rpc: str | None = None
    count: Num = None
    time: _RpcTime | None = None


class _UserRpc(msgspec.Struct, gc=False):
    user: str | None = None
    count: Num = None
    time: _RpcTime | None = None


class DbdStatistics(msgspec.Struct, gc=False):
    time_start: Num = None  # Unix time: slurmdbd's start, or its last `sacctmgr clear stats`
    rollups: list[RollupItem] | RollupSlots | None = None
    rpcs: list[_Rpc] | None = msgspec.field(default=None, name="RPCs")
    users: list[_UserRpc] | None = None


def _seconds(usec: Num) -> float:
    return usec_to_seconds(number(usec) or 0)


def _when(value: Num) -> float | None:
    """A Unix time; None for 0 (never) or unset."""
    t = number(value)
    return float(t) if t else None


def _from_item(period: str, item: RollupItem | None) -> Rollup:
    if item is None:  # a slot that never ran is left out of the list
        return Rollup(period, 0, None, 0.0, 0.0, 0.0)
    return Rollup(
        period=period,
        runs=integer(item.total_cycles),
        last_run=_when(item.last_run),
        last_seconds=_seconds(item.last_cycle),
        max_seconds=_seconds(item.max_cycle),
        total_seconds=_seconds(item.total_time),
    )


def _from_slot(period: str, slot: RollupSlot | None) -> Rollup:
    d = (slot.duration if slot else None) or _Duration()
    return Rollup(
        period=period,
        runs=integer(slot.count) if slot else 0,
        last_run=_when(slot.last_run) if slot else None,
        last_seconds=_seconds(d.last),
        max_seconds=_seconds(d.max),
        total_seconds=_seconds(d.time),
    )


def _rollups(raw: list[RollupItem] | RollupSlots | None) -> tuple[Rollup, ...]:
    if isinstance(raw, RollupSlots):
        slots = (raw.hourly, raw.daily, raw.monthly)
        return tuple(_from_slot(p, s) for p, s in zip(ROLLUP_PERIODS, slots, strict=True))
    by_type = {item.type: item for item in raw or ()}
    return tuple(
        _from_item(p, by_type.get(t)) for p, t in zip(ROLLUP_PERIODS, _SLOT_TYPES, strict=True)
    )


def to_slurmdbd_diag(s: DbdStatistics) -> SlurmdbdDiag:
    return SlurmdbdDiag(
        stats_since=float(number(s.time_start) or 0),
        rollups=_rollups(s.rollups),
        rpcs_by_type=tuple(
            RpcStat(r.rpc or "", integer(r.count), _seconds(r.time.total if r.time else None))
            for r in s.rpcs or ()
        ),
        rpcs_by_user=tuple(
            RpcStat(u.user or "", integer(u.count), _seconds(u.time.total if u.time else None))
            for u in s.users or ()
        ),
    )

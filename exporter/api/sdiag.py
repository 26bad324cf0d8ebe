"""`/diag` statistics: the same keys in every generation, so one Struct serves all.

Only the number shapes changed (v0.0.40 wrapped the timestamps, v0.0.41 the
RPC average times), which `Num` absorbs. Keys a generation lacks keep their
default, except those that a generation may lack: those stay None so that the
metric is left out rather than reported as 0. Checked against the recorded
answers (tests/fixtures) and Slurm's source: v0.0.36-38 write their keys one by
one (src/plugins/openapi/v0.0.38/diag.c in slurm-22-05-11-1: no
schedule_cycle_sum, schedule_cycle_depth, bf_cycle_sum, bf_last_depth(_try),
and bf_table_size only in v0.0.38), and v0.0.40 skips schedule_cycle_sum,
schedule_cycle_depth and bf_cycle_max (add_skip() in
src/plugins/data_parser/v0.0.40/parsers.c, slurm-24-11-7-1).
"""

from __future__ import annotations

import msgspec

from exporter.api.decoding import Num, integer, number, optional_int
from exporter.api.model import Diag, RpcStat
from exporter.api.normalise import usec_to_seconds


class RpcByType(msgspec.Struct, gc=False):
    message_type: str | None = None
    count: Num = None
    total_time: Num = None  # microseconds


class RpcByUser(msgspec.Struct, gc=False):
    user: str | None = None
    count: Num = None
    total_time: Num = None  # microseconds


class Statistics(msgspec.Struct, gc=False):
    server_thread_count: Num = None
    agent_queue_size: Num = None
    agent_count: Num = None
    agent_thread_count: Num = None
    dbd_agent_queue_size: Num = None
    schedule_cycle_last: Num = None  # microseconds, like every *_cycle_* time
    schedule_cycle_max: Num = None
    schedule_cycle_mean: Num = None
    schedule_cycle_sum: Num = None
    schedule_cycle_total: Num = None
    schedule_cycle_mean_depth: Num = None
    schedule_cycle_per_minute: Num = None
    schedule_cycle_depth: Num = None
    schedule_queue_length: Num = None
    jobs_submitted: Num = None
    jobs_started: Num = None
    jobs_completed: Num = None
    jobs_canceled: Num = None
    jobs_failed: Num = None
    jobs_pending: Num = None
    jobs_running: Num = None
    bf_active: bool | None = None
    bf_backfilled_jobs: Num = None
    bf_last_backfilled_jobs: Num = None
    bf_cycle_counter: Num = None
    bf_cycle_last: Num = None
    bf_cycle_max: Num = None
    bf_cycle_mean: Num = None
    bf_cycle_sum: Num = None
    bf_depth_mean: Num = None
    bf_last_depth: Num = None
    bf_last_depth_try: Num = None
    bf_queue_len: Num = None
    bf_table_size: Num = None
    bf_when_last_cycle: Num = None  # unix time
    req_time_start: Num = None  # unix time of the last statistics reset
    rpcs_by_message_type: list[RpcByType] | None = None
    rpcs_by_user: list[RpcByUser] | None = None


def _seconds(usec: Num) -> float:
    return usec_to_seconds(number(usec) or 0)


def _seconds_if_reported(value: Num) -> float | None:
    usec = number(value)
    return None if usec is None else usec_to_seconds(usec)


def _time(value: Num) -> float:
    return float(number(value) or 0)


def to_diag(s: Statistics) -> Diag:
    return Diag(
        server_thread_count=integer(s.server_thread_count),
        agent_queue_size=integer(s.agent_queue_size),
        agent_count=integer(s.agent_count),
        agent_thread_count=integer(s.agent_thread_count),
        dbd_agent_queue_size=integer(s.dbd_agent_queue_size),
        schedule_cycle_last_seconds=_seconds(s.schedule_cycle_last),
        schedule_cycle_max_seconds=_seconds(s.schedule_cycle_max),
        schedule_cycle_mean_seconds=_seconds(s.schedule_cycle_mean),
        schedule_cycle_sum_seconds=_seconds_if_reported(s.schedule_cycle_sum),
        schedule_cycle_total=integer(s.schedule_cycle_total),
        schedule_cycle_mean_depth=integer(s.schedule_cycle_mean_depth),
        schedule_cycle_per_minute=integer(s.schedule_cycle_per_minute),
        schedule_cycle_depth=optional_int(s.schedule_cycle_depth),
        schedule_queue_length=integer(s.schedule_queue_length),
        jobs_submitted=integer(s.jobs_submitted),
        jobs_started=integer(s.jobs_started),
        jobs_completed=integer(s.jobs_completed),
        jobs_canceled=integer(s.jobs_canceled),
        jobs_failed=integer(s.jobs_failed),
        jobs_pending=integer(s.jobs_pending),
        jobs_running=integer(s.jobs_running),
        bf_active=bool(s.bf_active),
        bf_backfilled_jobs=integer(s.bf_backfilled_jobs),
        bf_last_backfilled_jobs=integer(s.bf_last_backfilled_jobs),
        bf_cycle_counter=integer(s.bf_cycle_counter),
        bf_cycle_last_seconds=_seconds(s.bf_cycle_last),
        bf_cycle_max_seconds=_seconds_if_reported(s.bf_cycle_max),
        bf_cycle_mean_seconds=_seconds(s.bf_cycle_mean),
        bf_cycle_sum_seconds=_seconds_if_reported(s.bf_cycle_sum),
        bf_depth_mean=integer(s.bf_depth_mean),
        bf_last_depth=optional_int(s.bf_last_depth),
        bf_last_depth_try=optional_int(s.bf_last_depth_try),
        bf_queue_len=integer(s.bf_queue_len),
        bf_table_size=optional_int(s.bf_table_size),
        bf_when_last_cycle=_time(s.bf_when_last_cycle),
        stats_since=_time(s.req_time_start),
        rpcs_by_message_type=tuple(
            RpcStat(
                name=r.message_type or "",
                count=integer(r.count),
                total_time_seconds=_seconds(r.total_time),
            )
            for r in s.rpcs_by_message_type or ()
        ),
        rpcs_by_user=tuple(
            RpcStat(
                name=r.user or "",
                count=integer(r.count),
                total_time_seconds=_seconds(r.total_time),
            )
            for r in s.rpcs_by_user or ()
        ),
    )

"""The counting window of the accounting endpoint: which job events of slurmdbd's records
to count, each exactly once, however the polls fall (pure: no clock, no I/O).

An event is a job's start (time.start) or end (time.end), keyed by (event, job_id,
submit): slurmrestd asks slurmdbd with JOBCOND_FLAG_DUP (src/slurmrestd/plugins/openapi/
slurmdbd/jobs.c:94,120 at slurm-24-11-5-1; src/plugins/openapi/dbv0.0.38/jobs.c:552,579
at slurm-22-05-8-1), so a requeued job's runs come as records of their own, told apart by
their submit time. Each poll asks for [lower bound, now) where the lower bound is the
previous good poll's end less OVERLAP_SECONDS (slurmctld sends starts and ends to
slurmdbd asynchronously: a record may land late), never before the window began (the
process start: what happened before is history, never counted; a restart starts the
counters afresh). Events already counted in that overlap are remembered, and only they:
the memory forgets every event older than the next lower bound (bounded by the events of
OVERLAP_SECONDS plus one poll). A failed poll leaves the cursor where it was: the next
good one asks from there and catches up. A window wider than `max_window` is asked for
in chunks, one after the other, the cursor following each good chunk. After a failed poll
(slurmdbd down), the span from where the outage began is asked once more by the good poll
after the first good one: slurmctld sends the starts and ends it queued for slurmdbd once
slurmdbd is back (its agent queue), which may take longer than that first poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from exporter.api.model import AccountedJob

# how late a start or end may reach slurmdbd and still be counted (slurmctld's agent
# queue to slurmdbd drains within seconds unless slurmdbd is down; a longer outage is
# caught up by the cursor, which stays where the last good poll left it)
OVERLAP_SECONDS = 600

# the states whose records are jobs that ended (lower case, as AccountedJob.state)
END_STATES = frozenset({
    "completed", "failed", "timeout", "out_of_memory", "node_fail", "cancelled",
    "preempted", "boot_fail", "deadline", "requeued",
})

# "resized": the end of a resized job's record of before the resize (its usage only)
EventKind = Literal["start", "end", "resized"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    job: AccountedJob


def job_events(job: AccountedJob) -> list[tuple[EventKind, int]]:
    """The job's events and their times: a start once resources were allocated (not the
    start == end that slurmctld writes for a job cancelled while pending), an end once
    the record is in an end state. A job never eligible (held, then cancelled) has none:
    sacct's default window leaves it out (time_eligible must be set:
    as_mysql_jobacct_process.c:1690-1697 at slurm-24-11-5-1), although slurmdbd's
    answer to the states asked for has it (24.11 lab); nor, in a window, a job eligible
    only after the window (cancelled before its --begin time: time_eligible is the begin
    time; count() checks it, as sacct's "time_eligible < end"). A record without a
    partition is slurmdbd's placeholder for a job whose end came before its start record
    (as_mysql_job_complete, as_mysql_job.c:1189-1211 at slurm-22-05-8-1: no partition,
    name "allocation"): not counted yet, the start record completes it within seconds
    and a later poll counts it (the overlap)."""
    events: list[tuple[EventKind, int]] = []
    if job.eligible <= 0 or not job.partition:
        return events
    if job.started and job.start > 0:
        events.append(("start", job.start))
    if job.state in END_STATES and job.end > 0:
        events.append(("end", job.end))
    elif job.state == "resizing" and job.started and job.end > 0:
        # slurmctld ends the record at the resize and starts a new one, the job goes on
        # (job_pre/post_resize_acctg(), src/slurmctld/job_mgr.c:15387-15430 at
        # slurm-24-11-5-1): this record's allocation x Elapsed is usage, not an end
        events.append(("resized", job.end))
    return events


@dataclass(slots=True)
class Window:
    """Where counting stands. Times are whole Unix seconds, as slurmdbd keeps them."""

    started_at: int  # when counting began: nothing earlier is ever counted
    max_window: int  # the widest span asked for at once (--accounting-max-window)
    overlap: int = OVERLAP_SECONDS
    cursor: int = -1  # the end of the last window counted (-1: started_at)
    # (event, job_id, submit) -> the event's time, for the events of the overlap
    seen: dict[tuple[EventKind, int, int], int] = field(default_factory=dict)
    # the cursor when an outage began: the lower bound stays there until the second good
    # poll after it (`recovering`: the first has been) has asked that span again
    hold: int | None = None
    recovering: bool = False

    def __post_init__(self) -> None:
        if self.cursor < 0:
            self.cursor = self.started_at
        if self.max_window < 1 or self.overlap < 0:
            raise ValueError("max_window must be >= 1 and overlap >= 0")

    def lower_bound(self) -> int:
        """The earliest time the next poll counts."""
        since = self.cursor if self.hold is None else min(self.cursor, self.hold)
        return max(self.started_at, since - self.overlap)

    def failed(self) -> None:
        """A poll failed (some chunks may have been counted): hold the outage's start."""
        if self.hold is None:
            self.hold = self.cursor
        self.recovering = False

    def succeeded(self) -> None:
        """A poll asked every chunk: the second one after an outage releases its hold."""
        if self.hold is not None:
            if self.recovering:
                self.hold, self.recovering = None, False
                self._forget()
            else:
                self.recovering = True

    def chunks(self, now: int) -> list[tuple[int, int]]:
        """The spans [lo, hi) to ask for, in order, to count up to `now`; at least one,
        if empty (the first poll, right at the start): every poll asks slurmdbd, whose
        answer is the endpoint's health."""
        lo = self.lower_bound()
        spans = []
        while lo < now:
            hi = min(now, lo + self.max_window)
            spans.append((lo, hi))
            lo = hi
        return spans or [(lo, max(lo, now))]

    def count(self, jobs: Iterable[AccountedJob], lo: int, hi: int) -> list[Event]:
        """The events of `jobs` in [lo, hi) not counted before; then the window reaches
        `hi`. Call it with the chunks of chunks(), in order, after each good answer."""
        if lo < self.lower_bound():  # what would be counted twice, or history
            lo = self.lower_bound()
        found = []
        for job in jobs:
            if job.eligible >= hi:  # sacct's default window: time_eligible < its end
                continue
            for kind, at in job_events(job):
                key = (kind, job.job_id, job.submit)
                if lo <= at < hi and key not in self.seen:
                    self.seen[key] = at
                    found.append(Event(kind, job))
        self.cursor = max(self.cursor, hi)
        self._forget()
        return found

    def _forget(self) -> None:
        """Keep only the events the next poll could see again."""
        bound = self.lower_bound()
        self.seen = {k: at for k, at in self.seen.items() if at >= bound}

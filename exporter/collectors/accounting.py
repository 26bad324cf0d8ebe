"""Job flows from slurmdbd (`/slurmdb/vX/jobs`): how long jobs waited, how they ended,
how long they ran, and what they used, as counters and classic histograms.

Unlike the other collectors this one keeps state across polls, in the collection
process: the counting window (window.py: which events are new) and the running totals
(Tally). A restart starts them afresh (a Prometheus counter reset). Each job's events
are counted once: its start (queue wait), its end (state, run time, usage, efficiency).
What "allocated" means is sacct's AllocTRES; usage is allocated x Elapsed, as sacct's
CPUTime (Elapsed excludes the time suspended).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.adapter import Adapter
from exporter.api.model import AccountedJob
from exporter.collectors.families import Key, gauge
from exporter.collectors.window import Event, Window

# HPC waits and runs: seconds to a week
QUEUE_WAIT_BUCKETS = (
    1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600,
    604800,
)
RUN_BUCKETS = (
    10, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800,
)
EFFICIENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)

P = "slurm_accounting_"
_SACCT = "sacct (slurmdbd): "


@dataclass(slots=True)
class _Histogram:
    """Counts per bucket (not cumulative) and the sum, for one label set."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        # le: a value on a bound falls in that bound's bucket
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


@dataclass(frozen=True, slots=True)
class Options:
    per_account: bool = False  # the job histograms and ended counts by account too
    per_user: bool = False  # the usage counters by user too
    efficiency: bool = False  # the efficiency histograms (needs the steps)


@dataclass(slots=True)
class Tally:
    """The running totals of the events counted so far."""

    options: Options
    queue_wait: dict[Key, _Histogram] = field(default_factory=dict)
    run: dict[Key, _Histogram] = field(default_factory=dict)
    cpu_efficiency: dict[Key, _Histogram] = field(default_factory=dict)
    memory_efficiency: dict[Key, _Histogram] = field(default_factory=dict)
    ended: Counter[Key] = field(default_factory=Counter)
    cpu_seconds: Counter[Key] = field(default_factory=Counter)
    gpu_seconds: Counter[Key] = field(default_factory=Counter)
    memory_byte_seconds: Counter[Key] = field(default_factory=Counter)

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.kind == "start":
                self._started(event.job)
            else:
                self._ended(event.job)

    def _job_key(self, job: AccountedJob) -> Key:
        return (job.partition, job.account) if self.options.per_account else (job.partition,)

    def _usage_key(self, job: AccountedJob) -> Key:
        return (job.account, job.user) if self.options.per_user else (job.account,)

    def _started(self, job: AccountedJob) -> None:
        wait = job.start - job.eligible  # never eligible: no events (window.job_events)
        _observe(self.queue_wait, self._job_key(job), QUEUE_WAIT_BUCKETS, max(wait, 0))

    def _ended(self, job: AccountedJob) -> None:
        key = self._job_key(job)
        self.ended[(*key[:1], job.state, *key[1:])] += 1
        if not job.started:
            return
        _observe(self.run, key, RUN_BUCKETS, max(job.end - job.start, 0))
        usage = self._usage_key(job)
        self.cpu_seconds[usage] += job.cpus * job.elapsed
        self.memory_byte_seconds[usage] += job.memory_bytes * job.elapsed
        for kind, count in job.gpus.items():
            self.gpu_seconds[(usage[0], kind, *usage[1:])] += count * job.elapsed
        if self.options.efficiency:
            self._efficiency(job)

    def _efficiency(self, job: AccountedJob) -> None:
        allocated = job.cpus * job.elapsed
        part = (job.partition,)
        if job.cpu_used_seconds is not None and allocated > 0:
            ratio = job.cpu_used_seconds / allocated
            _observe(self.cpu_efficiency, part, EFFICIENCY_BUCKETS, ratio)
        if job.max_rss_bytes is not None and job.memory_bytes > 0:
            ratio = job.max_rss_bytes / job.memory_bytes
            _observe(self.memory_efficiency, part, EFFICIENCY_BUCKETS, ratio)


def _observe(
    into: dict[Key, _Histogram], key: Key, bounds: tuple[float, ...], value: float
) -> None:
    hist = into.get(key)
    if hist is None:
        hist = into[key] = _Histogram(bounds)
    hist.observe(value)


def _histogram(
    name: str, doc: str, labels: Sequence[str], values: dict[Key, _Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key in sorted(values):
        hist = values[key]
        cumulative, buckets = 0, []
        for bound, count in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), float(cumulative)))
        family.add_metric(list(key), buckets, hist.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{float(bound)}"


def _counter(
    name: str, doc: str, labels: Sequence[str], values: Counter[Key]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key in sorted(values):
        family.add_metric(list(key), float(values[key]))
    return family


def collect_accounting(tally: Tally, window: Window) -> list[Metric]:
    """The families of the totals so far, and how far they reach."""
    o = tally.options
    account = ["account"] if o.per_account else []
    user = ["user"] if o.per_user else []
    families: list[Metric] = [
        _histogram(
            P + "job_queue_wait_seconds",
            _SACCT + "queue wait of the jobs that started (Start - Eligible), counted when "
            "they start.",
            ["partition", *account], tally.queue_wait,
        ),
        _counter(
            P + "jobs_ended_total",
            _SACCT + "jobs that ended, by final state (sacct's State, lower case; a "
            "requeued run counts as requeued), counted when they end.",
            ["partition", "state", *account], tally.ended,
        ),
        _histogram(
            P + "job_run_seconds",
            _SACCT + "run time (End - Start) of the jobs that ended after they started.",
            ["partition", *account], tally.run,
        ),
        _counter(
            P + "cpu_seconds",
            _SACCT + "allocated CPUs x Elapsed of the jobs that ended (sacct's CPUTime).",
            ["account", *user], tally.cpu_seconds,
        ),
        _counter(
            P + "gpu_seconds",
            _SACCT + "allocated GPUs x Elapsed of the jobs that ended, by GPU type "
            "(AllocTRES gres/gpu:TYPE; \"\" where it names none).",
            ["account", "gpu_type", *user], tally.gpu_seconds,
        ),
        _counter(
            P + "memory_byte_seconds",
            _SACCT + "allocated memory (bytes) x Elapsed of the jobs that ended.",
            ["account", *user], tally.memory_byte_seconds,
        ),
    ]
    if o.efficiency:
        families += [
            _histogram(
                P + "job_cpu_efficiency_ratio",
                _SACCT + "CPU time used by the steps (TotalCPU) / (allocated CPUs x "
                "Elapsed) of the jobs that ended.",
                ["partition"], tally.cpu_efficiency,
            ),
            _histogram(
                P + "job_memory_efficiency_ratio",
                _SACCT + "largest RSS of a task of any step (MaxRSS) / allocated memory "
                "of the jobs that ended.",
                ["partition"], tally.memory_efficiency,
            ),
        ]
    families += [
        gauge(P + "window_end_timestamp_seconds",
              "How far the accounting counters reach: the end of the last window counted "
              "(Unix time).", [], {(): float(window.cursor)}),
        gauge(P + "window_start_timestamp_seconds",
              "When the accounting counters began (the exporter's start, Unix time): "
              "jobs that started or ended before are not counted.",
              [], {(): float(window.started_at)}),
    ]
    return families


# fetch(query) -> the decoded records of one request (raises EndpointFailure)
Fetch = Callable[[str], list[AccountedJob]]


class AccountingPoller:
    """The accounting endpoint's state across polls: one per collection process."""

    def __init__(self, options: Options, started_at: float, max_window: float) -> None:
        self.window = Window(started_at=int(started_at), max_window=int(max_window))
        self.tally = Tally(options)

    def poll(self, adapter: Adapter, fetch: Fetch, now: float) -> list[Metric]:
        """Ask for every chunk up to `now` and count it; a failure (raised by fetch)
        leaves the window where the last good chunk put it."""
        steps = self.tally.options.efficiency
        for lo, hi in self.window.chunks(int(now)):
            jobs = fetch(adapter.accounting_query(lo, hi, steps))
            self.tally.add(self.window.count(jobs, lo, hi))
        return self.families()

    def families(self) -> list[Metric]:
        return collect_accounting(self.tally, self.window)

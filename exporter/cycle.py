"""The collection cycle: call the enabled endpoints concurrently, keep the last good data,
and publish an immutable snapshot, already rendered, for /metrics to serve.

/metrics never waits on slurmrestd: it serves the bytes of the last snapshot.
A failing endpoint keeps its last good families (their age is visible in
slurm_exporter_endpoint_last_success_timestamp_seconds) and does not blank the others,
until they are older than --stale-data-max-age: then they are dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.api.adapter import Adapter
from exporter.api.discovery import discover
from exporter.api.errors import (
    SLURM_NO_CHANGE_IN_DATA,
    DecodeError,
    SlurmError,
)
from exporter.api.model import Meta, Response
from exporter.api.versions import adapter_for, update_time_usable
from exporter.auth import AuthError, TokenSource
from exporter.client import SlurmrestdClient, slurm_error_failure
from exporter.collectors import COLLECTORS, EndpointCollector
from exporter.collectors.accounting import AccountingPoller
from exporter.collectors.health import (
    EndpointHealth,
    TokenHealth,
    collect_build_info,
    collect_health,
)
from exporter.errors import EndpointFailure, Reason
from exporter.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What /metrics serves until the next cycle ends."""

    exposition: bytes  # Prometheus text format 0.0.4
    created_at: float
    all_up: bool
    failures: tuple[tuple[str, EndpointFailure], ...] = ()
    gzipped: bytes = b""  # the exposition gzipped, when done ahead (by the collection process)


@dataclass(slots=True)
class _EndpointState:
    families: list[Metric] = field(default_factory=list)  # last good
    up: bool = False
    duration: float = 0.0
    last_success: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    last_failure: tuple[Reason, str] | None = None
    # the last full answer's last_update, to ask only for changes (?update_time=)
    last_update: int | None = None
    full_at: float = 0.0  # when that full answer came
    news: bool = False  # last_failure started or changed in this cycle: say it loudly
    dropped: bool = False  # families dropped as too old (--stale-data-max-age)
    called_at: float | None = None  # when it was last called: is it due again?
    # the last good normalised data, kept only for an endpoint another one joins (nodes)
    data: Any = None
    served: bool = True  # False: the API version in use has no such endpoint (skipped)
    # a detached endpoint's call (see _Outcome), from its start until the cycle after it
    # ended takes in its outcome: while set, the endpoint is not called again
    inflight: Future[_Outcome] | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a detached endpoint's call ended with, taken in by the cycle thread (the
    only one that writes _EndpointState)."""

    families: list[Metric] | None  # None: a failure with nothing new to serve
    failure: EndpointFailure | None
    seconds: float


# Even when slurmrestd keeps saying nothing changed, fetch everything this often.
FULL_REFRESH_SECONDS = 300.0
# --stale-data-max-age unset: a failing endpoint's last good data is served this many
# --interval long (a few failed cycles), then dropped.
STALE_INTERVALS = 5


class _Families:
    """A collector for a private registry, yielding families built elsewhere."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _partial_answer_failed(failure: EndpointFailure) -> bool:
    """A Slurm error with HTTP 500 to a request with update_time: what slurmrestd 23.11 to
    26.05.2 answer on /nodes when nodes changed and partitions did not (see
    exporter.api.versions.update_time_usable); asking again in full is the cure."""
    return failure.status == 500 and failure.reason == "slurm_error"


def first_snapshot(clock: Callable[[], float] = time.time) -> Snapshot:
    """Until the first cycle ends, /metrics says who we are, and nothing about Slurm."""
    return Snapshot(
        exposition=render([collect_build_info(__version__)]), created_at=clock(), all_up=False
    )


def render(families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


class Collection:
    """Runs cycles and holds the current snapshot (swapped atomically)."""

    def __init__(
        self,
        settings: Settings,
        client: SlurmrestdClient,
        tokens: TokenSource,
        clock: Callable[[], float] = time.time,
        report_failures: bool = True,
    ) -> None:
        self._settings = settings
        self._report_failures = report_failures  # log them (--once prints them itself)
        self._client = client
        self._tokens = tokens
        self._clock = clock
        self._endpoints = settings.enabled_endpoints()
        self._states = {e: _EndpointState() for e in self._endpoints}
        self._intervals = {e: settings.interval_of(e) for e in self._endpoints}
        self._adapter: Adapter | None = None
        if settings.api_version != "auto":
            self._adapter = adapter_for(settings.api_version)
        self._meta: Meta | None = None
        max_age = settings.stale_data_max_age
        # unset: a few of the endpoint's own intervals, not of the cycle's (a /shares
        # polled every 300 s must not count as stale after 5 cycles of 30 s)
        self._max_age = {
            e: STALE_INTERVALS * i if max_age is None else max_age
            for e, i in self._intervals.items()
        }
        # the stateful endpoints' state (accounting: its window and totals), kept here
        # across cycles from the process start on
        self._pollers: dict[str, AccountingPoller] = {
            e: poller(settings, clock())
            for e in self._endpoints
            if (poller := COLLECTORS[e].poller) is not None
        }
        # one thread per endpoint: a detached call in flight holds one, never another's
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._endpoints)), thread_name_prefix="endpoint"
        )
        self.snapshot = first_snapshot(clock)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # ------------------------------------------------------------------ cycle
    def run_once(self, wait_detached: bool = False) -> Snapshot:
        """One cycle: call the endpoints due, wait for them but for the detached ones
        (unless `wait_detached`: --once), publish the snapshot."""
        t0 = time.perf_counter()
        try:
            adapter = self._current_adapter()
        except EndpointFailure as failure:
            for e in self._endpoints:
                self._record_failure(e, failure, 0.0)
        else:
            due = self._due(adapter)
            for st in self._states.values():
                st.news = False  # an endpoint not called this cycle has no news either
            # those that join another endpoint's data (reservations: /nodes) once the
            # others are done
            for e in due:
                if COLLECTORS[e].detached:
                    self._states[e].inflight = self._pool.submit(self._detached, adapter, e)
            attached = [e for e in due if not COLLECTORS[e].detached]
            for wave in (
                [e for e in attached if COLLECTORS[e].joins is None],
                [e for e in attached if COLLECTORS[e].joins is not None],
            ):
                futures = [self._pool.submit(self._call, adapter, e) for e in wave]
                for fut in futures:
                    fut.result()  # _call never raises; this waits for it
        cycle_seconds = time.perf_counter() - t0
        if wait_detached:
            for st in self._states.values():
                if st.inflight is not None:
                    st.inflight.result()  # _detached never raises
        self._take_detached()
        self._log_failures()
        self.snapshot = self._publish(cycle_seconds)
        return self.snapshot

    def run_in_process(
        self, stop: threading.Event, publish: Callable[[Snapshot], None] | None = None
    ) -> None:
        """Cycle every --interval until `stop` is set, here; `publish` gets each snapshot."""
        interval = self._settings.interval
        while not stop.is_set():
            started = time.monotonic()
            try:
                snap = self.run_once()
            except Exception:  # a bug must not kill the loop: log it, serve the last snapshot
                log.exception("collection cycle failed unexpectedly")
            else:
                if publish is not None:
                    publish(snap)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    # -------------------------------------------------------------- internals
    def _due(self, adapter: Adapter) -> list[str]:
        """The endpoints to call in this cycle: those whose own interval
        (--collector-X-interval) has passed since their last call, and that the API
        version in use serves. The others keep their last answer, health included."""
        now = self._clock()
        # cycles start --interval apart, give or take: half a cycle of slack keeps a
        # 300 s endpoint from slipping to 330 s with 30 s cycles
        slack = self._settings.interval / 2
        due = []
        for e in self._endpoints:
            st = self._states[e]
            if st.inflight is not None:  # a detached call still running: never two
                continue
            if not adapter.serves(e):
                if st.served:  # (a version found again after a 404 may lack it)
                    log.info("%s: not served by API %s; not collected", e, adapter.version)
                    st.served, st.families, st.data = False, [], None
                continue
            st.served = True
            called, own = st.called_at, self._intervals[e]
            # polled every cycle: the cycle's own pacing decides (and run_once calls it); a
            # failing endpoint too, so that its "down" ends with the fault, not up to its
            # own interval later (a failed call is cheap: no answer to decode)
            if (
                own <= self._settings.interval
                or called is None
                or not st.up
                or now - called >= own - slack
            ):
                st.called_at = now
                due.append(e)
        return due

    def _joined(self, spec: EndpointCollector, data: Any) -> Any:
        """What spec.collect takes: the data, or with a join (data, the joined
        endpoint's last good data, None when it is not collected or has none)."""
        if spec.joins is None:
            return data
        other = self._states.get(spec.joins)
        return data, (other.data if other is not None and not other.dropped else None)

    def _current_adapter(self) -> Adapter:
        if self._adapter is not None:
            return self._adapter
        found = discover(self._client)
        chosen = found.require()
        log.info("using slurmrestd API %s (served: %s)", chosen, ", ".join(found.served))
        self._adapter = adapter_for(chosen)
        return self._adapter

    def _call(self, adapter: Adapter, endpoint: str) -> None:
        t0 = time.perf_counter()
        spec = COLLECTORS[endpoint]
        path = adapter.path(endpoint)
        st = self._states[endpoint]
        since = self._since(endpoint, st)
        try:
            try:
                response = self._fetch(adapter, spec, path, since)
            except EndpointFailure as failure:
                if since is None or not _partial_answer_failed(failure):
                    raise
                # slurmrestd could not answer update_time (see update_time_usable): not
                # a failure of ours; the full answer, asked for now, decides
                log.debug("%s: %s; fetching it in full", endpoint, failure.message)
                response = self._fetch(adapter, spec, path, None)
            if response is None or response.unchanged:
                # nothing changed since `since`: the last good families still hold
                self._record_success(endpoint, st.families, time.perf_counter() - t0)
                return
            families = spec.collect(
                self._joined(spec, response.data), self._settings, self._clock()
            )
            if self._is_joined(endpoint):
                st.data = response.data
        except EndpointFailure as failure:
            # discover the versions again next cycle; not for /slurmdb/, which slurmrestd
            # does not serve without slurmdbd whatever the version
            if (
                failure.reason == "not_found"
                and self._settings.api_version == "auto"
                and not path.startswith("/slurmdb/")
            ):
                self._adapter = None
            self._record_failure(endpoint, failure, time.perf_counter() - t0)
            return
        except Exception as e:  # a bug in a parser or collector: report it, don't crash
            log.exception("%s: unexpected error", endpoint)
            bug = EndpointFailure("decode", f"GET {path}: unexpected {type(e).__name__}: {e}")
            self._record_failure(endpoint, bug, time.perf_counter() - t0)
            return
        self._meta = response.meta
        for w in response.warnings:
            log.debug("GET %s: slurmrestd warning: %s", path, w)
        st.last_update, st.full_at = response.last_update, self._clock()
        self._record_success(endpoint, families, time.perf_counter() - t0)

    def _detached(self, adapter: Adapter, endpoint: str) -> _Outcome:
        """A detached endpoint's call, on its own thread: it writes no shared state (the
        poller's is its own, one call at a time); the cycle takes in the outcome."""
        t0 = time.perf_counter()
        spec = COLLECTORS[endpoint]
        path = adapter.path(endpoint)
        poller = self._pollers.get(endpoint)
        try:
            if poller is not None:

                def fetch(query: str) -> Any:
                    response = self._fetch(adapter, spec, path, None, query)
                    return response.data if response is not None else []

                families = poller.poll(adapter, fetch, self._clock())
            else:
                response = self._fetch(adapter, spec, path, None)
                data = response.data if response is not None else None
                families = spec.collect(data, self._settings, self._clock())
        except EndpointFailure as failure:
            # a stateful endpoint's counters keep what the good chunks counted
            kept = poller.families() if poller is not None else None
            return _Outcome(kept, failure, time.perf_counter() - t0)
        except Exception as e:  # a bug in a parser or collector: report it, don't crash
            log.exception("%s: unexpected error", endpoint)
            bug = EndpointFailure("decode", f"GET {path}: unexpected {type(e).__name__}: {e}")
            return _Outcome(None, bug, time.perf_counter() - t0)
        return _Outcome(families, None, time.perf_counter() - t0)

    def _take_detached(self) -> None:
        """Record the outcome of the detached calls that ended since the last cycle."""
        for endpoint, st in self._states.items():
            if st.inflight is None or not st.inflight.done():
                continue
            outcome = st.inflight.result()
            st.inflight = None
            if outcome.failure is None:
                assert outcome.families is not None
                self._record_success(endpoint, outcome.families, outcome.seconds)
                continue
            self._record_failure(endpoint, outcome.failure, outcome.seconds)
            if outcome.families is not None:
                st.families = outcome.families

    def _is_joined(self, endpoint: str) -> bool:
        return any(COLLECTORS[e].joins == endpoint for e in self._endpoints)

    def _fetch(
        self,
        adapter: Adapter,
        spec: EndpointCollector,
        path: str,
        since: int | None,
        query: str | None = None,
    ) -> Response[Any] | None:
        """The decoded answer; None when slurmrestd said nothing changed since `since`.
        `query`: the query to send (a poller's), instead of the endpoint's own."""
        if query is None and spec.query is not None:
            query = spec.query(self._settings)
        params = [query] if query else []
        if since is not None:
            params.append(f"update_time={since}")
        query = "?".join([path, "&".join(p for p in params if p)]).rstrip("?")
        status = 0
        try:
            if spec.parse_stream is not None:
                parse_stream = spec.parse_stream

                def parse(code: int, chunks: Iterable[bytes]) -> Response[Any] | None:
                    nonlocal status
                    status = code
                    if code == 304:  # /nodes: nothing changed since update_time
                        return None
                    return parse_stream(adapter, chunks)

                return self._client.fetch(query, parse, accept_304=True)
            answer = self._client.get(query)
            status = answer.status
            return spec.parse(adapter, answer.body)
        except DecodeError as e:
            raise EndpointFailure("decode", f"GET {path}: HTTP {status} but {e}", status) from None
        except SlurmError as e:
            if since is not None and SLURM_NO_CHANGE_IN_DATA in e.error_numbers:
                return None  # older slurmrestd: "no change" as an error
            # the same reasons as for an error status: auth or slurm_error
            raise slurm_error_failure(path, status, e) from None

    def _since(self, endpoint: str, st: _EndpointState) -> int | None:
        """The update_time to ask with: only once a full answer is in hand, still good,
        not older than FULL_REFRESH_SECONDS, and where this Slurm release answers it right."""
        if st.last_update is None or not st.up:
            return None
        if not update_time_usable(endpoint, self._meta.slurm_release if self._meta else ""):
            return None
        if self._clock() - st.full_at > FULL_REFRESH_SECONDS:
            return None
        return st.last_update

    def _record_success(self, endpoint: str, families: list[Metric], seconds: float) -> None:
        st = self._states[endpoint]
        if st.last_failure is not None:
            log.info("%s: recovered after %s", endpoint, st.last_failure[0])
        st.families, st.up, st.duration = families, True, seconds
        st.last_success = self._clock()
        st.last_failure = None
        st.dropped = False

    def _record_failure(self, endpoint: str, failure: EndpointFailure, seconds: float) -> None:
        st = self._states[endpoint]
        st.up, st.duration = False, seconds
        st.errors[failure.reason] += 1
        this = (failure.reason, failure.message)
        # Say it loudly when it starts or changes; a repeat each cycle only at debug.
        st.news = st.last_failure is None or (
            _same_cause(st.last_failure) != _same_cause(this)
        )
        st.last_failure = this
        self._drop_if_too_old(endpoint, st)

    def _drop_if_too_old(self, endpoint: str, st: _EndpointState) -> None:
        """Stop serving a failing endpoint's last good data once it is too old to pass
        for current (Prometheus then marks its series stale)."""
        if st.dropped or st.last_success is None:
            return
        if endpoint in self._pollers:  # counters: their totals hold however old
            return
        age = self._clock() - st.last_success
        if age > self._max_age[endpoint]:
            log.warning(
                "%s: its last good data is %.0f s old, over --stale-data-max-age (%g s): "
                "no longer served until the endpoint answers again",
                endpoint, age, self._max_age[endpoint],
            )
            st.families, st.data, st.dropped = [], None, True

    def _log_failures(self) -> None:
        """One line per problem: endpoints failing for the same cause share it."""
        if not self._report_failures:
            return
        for news in (True, False):
            failing = [
                (e, EndpointFailure(*st.last_failure))
                for e, st in self._states.items()
                if not st.up and st.last_failure is not None and st.news == news
            ]
            stale = {
                e
                for e, st in self._states.items()
                if st.last_success is not None and not st.dropped
            }
            for line in failure_lines(failing, stale):
                log.log(logging.WARNING if news else logging.DEBUG, "%s", line)

    def _publish(self, cycle_seconds: float) -> Snapshot:
        try:
            expires_at = self._tokens.credentials().expires_at
        except AuthError:
            expires_at = None
        health = collect_health(
            endpoints={
                e: EndpointHealth(
                    st.up,
                    st.duration,
                    st.last_success,
                    dict(st.errors),
                    st.dropped,
                    self._intervals[e],
                )
                for e, st in self._served()
            },
            token=TokenHealth(expires_at, self._tokens.renewals()),
            meta=self._meta,
            version=__version__,
            cycle_seconds=cycle_seconds,
            cycle_finished_at=self._clock(),
        )
        families: list[Metric] = []
        for _, st in self._served():
            families.extend(st.families)
        families.extend(health)
        failures = tuple(
            (e, EndpointFailure(st.last_failure[0], st.last_failure[1]))
            for e, st in self._served()
            if st.last_failure is not None
        )
        return Snapshot(
            exposition=render(families),
            created_at=self._clock(),
            all_up=all(st.up for _, st in self._served()),
            failures=failures,
        )

    def _served(self) -> list[tuple[str, _EndpointState]]:
        """The endpoints that count: not those the API version in use lacks."""
        return [(e, st) for e, st in self._states.items() if st.served]


def _same_cause(failure: tuple[str, str]) -> tuple[str, str]:
    """A failure without its path's query: accounting asks for another window at each
    poll, which is no new cause."""
    reason, message = failure
    return reason, _QUERY.sub(r"\1", message, count=1)


_QUERY = re.compile(r"^(GET [^?\s]*)\?\S*")

# A failure's message: "GET <path>: <cause and fix>[ [HTTP <status>: <what it said>]]"
_MESSAGE = re.compile(r"^(?:GET \S+: )?(?P<cause>.*?)(?: \[(?P<seen>HTTP [^\]]*)\])?$")


def failure_lines(
    failures: Iterable[tuple[str, EndpointFailure]], stale: Container[str] = ()
) -> list[str]:
    """'diag, jobs failed [auth]: ...': one line per cause, not one per endpoint.

    Failures alike but for the path and the answer they name (a refused token on
    every endpoint) are one cause: said once, with what each answer said.
    """
    groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for endpoint, f in failures:
        m = _MESSAGE.match(f.message)
        cause, seen = (m["cause"], m["seen"] or "") if m else (f.message, "")
        groups.setdefault((f.reason, cause), []).append((endpoint, f.message, seen))
    lines = []
    for (reason, cause), members in groups.items():
        messages = {message for _, message, _ in members}
        shown = messages.pop() if len(messages) == 1 else cause
        seen = list(dict.fromkeys(s for _, _, s in members if s))
        if len(messages) > 1 and seen:
            shown += f" [{'; '.join(seen)}]"
        names = [endpoint for endpoint, _, _ in members]
        kept = " (serving the last good data)" if all(e in stale for e in names) else ""
        lines.append(f"{', '.join(names)} failed [{reason}]{kept}: {shown}")
    return lines


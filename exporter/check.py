"""`slurm-exporter check`: the troubleshooting part of Slurm's REST API quick start, automated.

It probes the configured slurmrestd step by step (token, connection, API
version, each endpoint) and prints, per problem, what it saw and the fix.
It never prints a token or a key. Exit status 1 if anything failed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import httpx

from exporter.api.conf import MetricsConf, conf_path, metrics_conf, private_data
from exporter.api.discovery import OPENAPI_PATH, discover
from exporter.api.errors import DecodeError, SlurmError
from exporter.api.model import Diag, Job
from exporter.api.versions import SUPPORTED_VERSIONS, adapter_for
from exporter.auth import AuthError, TokenSource, token_claims, token_source_from_settings
from exporter.client import SlurmrestdClient, slurm_error_failure
from exporter.collectors import COLLECTORS
from exporter.errors import EndpointFailure
from exporter.native import ENDPOINTS, exposed_name, exposition_names, shared_names
from exporter.native_names import NATIVE_METRICS, SOURCE_TAGS
from exporter.settings import Settings


class _Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    def ok(self, what: str, text: str) -> None:
        print(f"[ok]   {what}: {text}", file=self.out)

    def warn(self, what: str, text: str) -> None:
        print(f"[warn] {what}: {text}", file=self.out)

    def fail(self, what: str, text: str) -> None:
        self.failed = True
        print(f"[FAIL] {what}: {text}", file=self.out)


def run_check(
    settings: Settings, out: TextIO = sys.stdout, tokens: TokenSource | None = None
) -> int:
    """`tokens`: the source the command line built and checked at start, if any."""
    r = _Report(out)
    print(f"slurm-exporter check: {settings.slurmrestd_url}", file=out)
    if tokens is None:
        try:
            tokens = token_source_from_settings(settings)
        except AuthError as e:
            r.fail("token", str(e))
            return 1
    _check_token(r, tokens)
    client = SlurmrestdClient(settings, tokens)
    try:
        version = _check_versions(r, settings, client)
        if version is not None:
            answered = _check_endpoints(r, settings, client, version)
            if answered:  # else slurmrestd refused everything: nothing more to tell
                conf = _conf_body(client, version)
                _check_private_data(r, conf, _user(tokens), answered)
                _check_native(r, settings, conf, answered)
    finally:
        client.close()
    print("all checks passed" if not r.failed else "some checks FAILED (see above)", file=out)
    return 1 if r.failed else 0


def _user(tokens: TokenSource) -> str | None:
    """The Slurm user the exporter acts as (X-SLURM-USER-NAME, or the token's `sun`)."""
    try:
        creds = tokens.credentials()
    except AuthError:
        return None
    if creds.user:
        return creds.user
    sun = token_claims(creds.token).get("sun") if creds.token else None
    return sun if isinstance(sun, str) else None


def _check_token(r: _Report, tokens: TokenSource) -> None:
    try:
        creds = tokens.credentials()
    except AuthError as e:
        r.fail("token", f"{tokens.description}: {e}")
        return
    if not creds.token:
        r.ok("token", tokens.description)
        return
    who = f"user {creds.user!r}" if creds.user else "user from the token's 'sun' claim"
    if creds.expires_at is None:
        r.warn("token", f"{tokens.description}, {who}: no 'exp' claim, lifespan unknown")
        return
    left = creds.expires_at - time.time()
    if left <= 0:
        r.fail(
            "token",
            f"{tokens.description}, {who}: EXPIRED {-left:.0f} s ago. Fix: get a new one "
            "('scontrol token lifespan=N') or let the exporter mint tokens with "
            "--jwt-key-file KEY --jwt-user USER",
        )
    else:
        r.ok("token", f"{tokens.description}, {who}: expires in {left:.0f} s")


def _check_versions(r: _Report, settings: Settings, client: SlurmrestdClient) -> str | None:
    try:
        found = discover(client)
    except EndpointFailure as e:
        what = "connection" if e.reason in ("connect", "timeout") else OPENAPI_PATH
        r.fail(what, e.message)
        return None
    served = ", ".join(found.served) or "(none)"
    r.ok("connection", f"slurmrestd answered {OPENAPI_PATH} in {found.seconds * 1000:.0f} ms")
    if settings.api_version != "auto":
        if settings.api_version not in found.served:
            r.fail(
                "api version",
                f"--api-version {settings.api_version} is not served by slurmrestd, which "
                f"serves {served}. Fix: --api-version auto, or one of "
                "those (a wrong version in the path is what makes slurmrestd answer 404)",
            )
            return None
        r.ok("api version", f"{settings.api_version} (served: {served})")
        return settings.api_version
    try:
        chosen = found.require()
    except EndpointFailure as e:
        r.fail("api version", e.message)
        return None
    note = "" if chosen in SUPPORTED_VERSIONS else " (newer than known: read as the newest known)"
    r.ok("api version", f"auto -> {chosen}{note} (served: {served})")
    return chosen


def _check_endpoints(
    r: _Report, settings: Settings, client: SlurmrestdClient, version: str
) -> dict[str, Any]:
    """Call each endpoint once; return what each answered (decoded) when it did."""
    adapter = adapter_for(version)
    answered: dict[str, Any] = {}
    for endpoint in settings.enabled_endpoints():
        if not adapter.serves(endpoint):
            r.ok(f"endpoint {endpoint}", f"not served by {version}: not collected")
            continue
        path = adapter.path(endpoint)
        if COLLECTORS[endpoint].poller is not None:  # the last minute, never all history
            now = int(time.time())
            path += "?" + adapter.accounting_query(now - 60, now, steps=False)
        try:
            answer = client.get(path)
            data = COLLECTORS[endpoint].parse(adapter, answer.body).data
        except EndpointFailure as e:
            r.fail(f"endpoint {endpoint}", f"[{e.reason}] {e.message}{_denied_hint(e)}")
            continue
        except SlurmError as e:  # in a 2xx answer: the same reasons as the cycle's
            f = slurm_error_failure(path, answer.status, e)
            r.fail(f"endpoint {endpoint}", f"[{f.reason}] {f.message}{_denied_hint(f)}")
            continue
        except DecodeError as e:
            r.fail(f"endpoint {endpoint}", f"[decode] GET {path}: {e}")
            continue
        answered[endpoint] = data
        size = f", {len(data)} items" if isinstance(data, list) else ""
        r.ok(
            f"endpoint {endpoint}",
            f"GET {path}: HTTP {answer.status} in {answer.seconds * 1000:.0f} ms{size}",
        )
    return answered


def _operator_fix(user: str) -> str:
    return (
        f"Fix: make {user!r} an Operator: 'sacctmgr modify user {user} set "
        "adminlevel=operator' (needs slurmdbd), or run the exporter with a token of "
        "SlurmUser or root"
    )


def _denied_hint(failure: EndpointFailure) -> str:
    # slurmctld refuses node and partition lists to users below Operator when
    # PrivateData=nodes / partitions (proc_req.c, _slurm_rpc_dump_nodes/_partitions);
    # slurmdbd's statistics (`forbidden`) say their own fix
    if failure.reason == "forbidden" or "access/permission denied" not in failure.message.lower():
        return ""
    return (
        ". PrivateData=nodes or partitions in slurm.conf hides them from users below "
        "Operator; make the exporter's user an Operator: 'sacctmgr modify user NAME set "
        "adminlevel=operator'"
    )


def _check_private_data(
    r: _Report, conf: bytes | None, user: str | None, answered: dict[str, Any]
) -> None:
    """PrivateData=jobs makes slurmctld send a user below Operator only its own jobs
    (job_mgr.c, _hide_job_user_rec / pack_all_jobs): the counts drop without an error.
    Read PrivateData where slurmrestd shows slurm.conf (v0.0.45+), and compare the jobs
    seen with the jobs slurmctld counts (sdiag)."""
    jobs: list[Job] | None = answered.get("jobs")
    diag: Diag | None = answered.get("diag")
    if jobs is None or not user:
        return
    hidden = "jobs" in _private_data(conf)
    own = [j for j in jobs if j.user == user]
    if len(own) < len(jobs):
        return  # other users' jobs are visible: nothing hidden from this user
    # counted as sdiag counts them (controller.c:4384-4391 at slurm-26-05-3-1,
    # _foreach_job_running): a pending record counts its tasks (an array's meta record
    # all of its tasks), a running one once. squeue's "configuring" is a running job too.
    active = sum(j.tasks for j in own if j.pending) + sum(
        1 for j in own if j.state in ("running", "configuring")
    )
    # every job, whoever sees it: slurmctld recounts them every 30 s
    # (_update_diag_job_state_counts)
    counted = diag.jobs_pending + diag.jobs_running if diag is not None else 0
    if counted > active:
        r.fail(
            "private data",
            f"slurmrestd shows user {user!r} only its own jobs ({active} pending or running) "
            f"while slurmctld counts {counted}: PrivateData=jobs in slurm.conf hides other "
            f"users' jobs from users below Operator, so every job count would be too low "
            "(slurmctld recounts every 30 s: if jobs just ended, run check again). "
            + _operator_fix(user),
        )
    elif hidden:
        r.warn(
            "private data",
            f"PrivateData=jobs is set in slurm.conf: unless {user!r} is an Operator, the "
            "exporter sees only its own jobs (no other user's job is in the queue now to "
            "tell). " + _operator_fix(user),
        )


def _conf_body(client: SlurmrestdClient, version: str) -> bytes | None:
    """slurm.conf as slurmrestd shows it (v0.0.45+); None where it does not."""
    path = conf_path(version)
    if path is None:
        return None
    try:
        return client.get(path).body
    except (EndpointFailure, SlurmError):
        return None


def _private_data(conf: bytes | None) -> frozenset[str]:
    """PrivateData from slurmrestd's /conf where there is one; empty otherwise."""
    try:
        return private_data(conf) if conf is not None else frozenset()
    except DecodeError:
        return frozenset()


# ----------------------------------------------------------- Slurm's own metrics (25.11+)
_SEE = "README: With Slurm's metrics/openmetrics"


def _check_native(
    r: _Report, settings: Settings, conf_body: bytes | None, answered: dict[str, Any]
) -> None:
    """Whether slurmctld serves Slurm's own metrics, and whether any of their names is
    one of the exporter's (a Prometheus scraping both would mix them)."""
    ours = _our_names(settings, answered)
    listed = shared_names(ours)
    tags = ", ".join(SOURCE_TAGS)
    if listed:
        r.fail("metric names", f"{', '.join(listed)}: also names of Slurm's own metrics "
               f"({tags}) with another meaning ({_SEE})")
    else:
        r.ok("metric names", f"none of the exporter's {len(ours)} names is one of the "
             f"{len(NATIVE_METRICS)} of Slurm's metrics/openmetrics ({tags})")
    conf = _metrics_conf(conf_body)
    url = settings.native_metrics_url or (conf.url if conf and conf.metrics_type else None)
    if conf is None and url is None:
        r.ok("native metrics", "unknown: slurmrestd shows slurm.conf (MetricsType) from "
             "v0.0.45 (Slurm 26.05) on; to look, pass --native-metrics-url "
             "http://SLURMCTLD:6817/metrics")
        return
    if conf is not None and not _conf_serves(r, conf) and not settings.native_metrics_url:
        return
    if url is None:
        r.warn("native metrics", "MetricsType is set but slurm.conf gives no controller "
               "address: pass --native-metrics-url http://SLURMCTLD:6817/metrics")
        return
    served = _fetch_native(r, settings, url)
    if served is None:
        return
    shared = shared_names(ours, served)
    if shared:
        r.warn("native metrics", f"{url} also serves {', '.join(shared)}: a Prometheus "
               "scraping both mixes them in every query that does not filter on the job "
               f"label ({_SEE})")
        return
    new = len(served - NATIVE_METRICS.keys())
    newer = f", {new} not in the exporter's list of {tags}" if new else ""
    r.ok("native metrics", f"slurmctld serves Slurm's own metrics at {url}/{{"
         f"{','.join(ENDPOINTS)}}} ({len(served)} names{newer}); none is one of the "
         f"exporter's: scrape both ({_SEE})")


def _metrics_conf(body: bytes | None) -> MetricsConf | None:
    try:
        return metrics_conf(body) if body is not None else None
    except DecodeError:
        return None


def _conf_serves(r: _Report, conf: MetricsConf) -> bool:
    """What slurm.conf says; True if slurmctld should serve its metrics."""
    if not conf.metrics_type:
        r.ok("native metrics", "slurmctld serves none (MetricsType is unset in slurm.conf)")
        return False
    if conf.http_disabled:
        r.warn("native metrics", f"MetricsType={conf.metrics_type}, but "
               "CommunicationParameters=disable_http: slurmctld answers no HTTP")
        return False
    return True


def _fetch_native(r: _Report, settings: Settings, url: str) -> set[str] | None:
    """The names slurmctld serves under `url` (no token is sent: Prometheus scrapes
    without one unless slurm.conf asks for it); None, said why, when it cannot tell."""
    names: set[str] = set()
    verify = not settings.tls_insecure_skip_verify
    with httpx.Client(timeout=settings.timeout, verify=verify, follow_redirects=True) as http:
        for endpoint in ENDPOINTS:
            try:
                answer = http.get(f"{url}/{endpoint}")
            except httpx.HTTPError as e:
                r.warn("native metrics", f"GET {url}/{endpoint}: {_unreachable(e)}")
                return None
            if answer.status_code in (401, 403):
                r.warn("native metrics", f"GET {url}/{endpoint}: HTTP {answer.status_code}: "
                       "slurmctld wants a JWT (PrivateData or MetricsAuthUsers in slurm.conf); "
                       "give Prometheus one (authorization: Bearer) or set "
                       "MetricsParameters=ignore_private_data")
                return None
            if answer.status_code != 200:
                r.warn("native metrics", f"GET {url}/{endpoint}: HTTP {answer.status_code}")
                return None
            names |= exposition_names(answer.content)
    if not names:
        r.ok("native metrics", f"{url}: empty pages: slurmctld serves none (MetricsType "
             "unset)")
        return None
    return names


def _unreachable(e: httpx.HTTPError) -> str:
    """Why slurmctld's metrics could not be read, and where to look."""
    what = "no answer in time" if isinstance(e, httpx.TimeoutException) else (
        f"cannot connect ({e})" if isinstance(e, httpx.TransportError) else str(e)
    )
    return (
        f"{what}: check --native-metrics-url (slurmctld's host and SlurmctldPort, "
        "default 6817, as http://HOST:PORT/metrics) and that slurmctld runs"
    )


def _our_names(settings: Settings, answered: dict[str, Any]) -> set[str]:
    """The names the exporter serves with these settings, from the data check read."""
    names = set()
    for endpoint, data in answered.items():
        spec = COLLECTORS[endpoint]
        arg = (data, answered.get(spec.joins)) if spec.joins else data
        for fam in spec.collect(arg, settings, time.time()):
            names.add(exposed_name(fam.name, fam.type))
    return names

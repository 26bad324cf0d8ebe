"""`slurm-exporter check`: the troubleshooting part of Slurm's REST API quick start, automated.

It probes the configured slurmrestd step by step (token, connection, API
version, each endpoint) and prints, per problem, what it saw and the fix.
It never prints a token or a key. Exit status 1 if anything failed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from exporter.api.conf import conf_path, private_data
from exporter.api.discovery import OPENAPI_PATH, discover
from exporter.api.errors import DecodeError, SlurmError
from exporter.api.model import Diag, Job
from exporter.api.versions import SUPPORTED_VERSIONS, adapter_for
from exporter.auth import AuthError, TokenSource, token_claims, token_source_from_settings
from exporter.client import SlurmrestdClient, slurm_error_failure
from exporter.collectors import COLLECTORS
from exporter.errors import EndpointFailure
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
            _check_private_data(r, client, version, _user(tokens), answered)
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
            r.fail(f"endpoint {endpoint}", f"[{e.reason}] {e.message}{_denied_hint(e.message)}")
            continue
        except SlurmError as e:  # in a 2xx answer: the same reasons as the cycle's
            f = slurm_error_failure(path, answer.status, e)
            r.fail(f"endpoint {endpoint}", f"[{f.reason}] {f.message}{_denied_hint(f.message)}")
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


def _denied_hint(message: str) -> str:
    # slurmctld refuses node and partition lists to users below Operator when
    # PrivateData=nodes / partitions (proc_req.c, _slurm_rpc_dump_nodes/_partitions)
    if "access/permission denied" not in message.lower():
        return ""
    return (
        ". PrivateData=nodes or partitions in slurm.conf hides them from users below "
        "Operator; make the exporter's user an Operator: 'sacctmgr modify user NAME set "
        "adminlevel=operator'"
    )


def _check_private_data(
    r: _Report,
    client: SlurmrestdClient,
    version: str,
    user: str | None,
    answered: dict[str, Any],
) -> None:
    """PrivateData=jobs makes slurmctld send a user below Operator only its own jobs
    (job_mgr.c, _hide_job_user_rec / pack_all_jobs): the counts drop without an error.
    Read PrivateData where slurmrestd shows slurm.conf (v0.0.45+), and compare the jobs
    seen with the jobs slurmctld counts (sdiag)."""
    jobs: list[Job] | None = answered.get("jobs")
    diag: Diag | None = answered.get("diag")
    if jobs is None or not user:
        return
    hidden = "jobs" in _private_data(client, version)
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


def _private_data(client: SlurmrestdClient, version: str) -> frozenset[str]:
    """PrivateData from slurmrestd's /conf where there is one; empty otherwise."""
    path = conf_path(version)
    if path is None:
        return frozenset()
    try:
        return private_data(client.get(path).body)
    except (EndpointFailure, DecodeError, SlurmError):
        return frozenset()

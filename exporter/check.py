"""`slurm-exporter check`: the troubleshooting part of Slurm's REST API quick start, automated.

It probes the configured slurmrestd step by step (token, connection, API
version, each endpoint) and prints, per problem, what it saw and the fix.
It never prints a token or a key. Exit status 1 if anything failed.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from exporter.api.discovery import OPENAPI_PATH, choose_version, served_versions
from exporter.api.errors import DecodeError, SlurmError
from exporter.api.versions import SUPPORTED_VERSIONS, adapter_for
from exporter.auth import AuthError, TokenSource, token_source_from_settings
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


def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    r = _Report(out)
    print(f"slurm-exporter check: {settings.slurmrestd_url}", file=out)
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
            _check_endpoints(r, settings, client, version)
    finally:
        client.close()
    print("all checks passed" if not r.failed else "some checks FAILED (see above)", file=out)
    return 1 if r.failed else 0


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
        answer = client.get(OPENAPI_PATH)
        served = served_versions(answer.body)
    except EndpointFailure as e:
        what = "connection" if e.reason in ("connect", "timeout") else OPENAPI_PATH
        r.fail(what, e.message)
        return None
    except DecodeError as e:
        r.fail(OPENAPI_PATH, f"{e}; is {settings.slurmrestd_url} really slurmrestd?")
        return None
    r.ok("connection", f"slurmrestd answered {OPENAPI_PATH} in {answer.seconds * 1000:.0f} ms")
    supported = ", ".join(SUPPORTED_VERSIONS)
    if settings.api_version != "auto":
        if settings.api_version not in served:
            r.fail(
                "api version",
                f"--api-version {settings.api_version} is not served by slurmrestd, which "
                f"serves {', '.join(served) or '(none)'}. Fix: --api-version auto, or one of "
                "those (a wrong version in the path is what makes slurmrestd answer 404)",
            )
            return None
        r.ok("api version", f"{settings.api_version} (served: {', '.join(served)})")
        return settings.api_version
    chosen = choose_version(served)
    if chosen is None:
        r.fail(
            "api version",
            f"slurmrestd serves {', '.join(served) or '(none)'}; this exporter supports "
            f"{supported}. Fix: upgrade the exporter, or Slurm",
        )
        return None
    note = "" if chosen in SUPPORTED_VERSIONS else " (newer than known: read as the newest known)"
    r.ok("api version", f"auto -> {chosen}{note} (served: {', '.join(served)})")
    return chosen


def _check_endpoints(
    r: _Report, settings: Settings, client: SlurmrestdClient, version: str
) -> None:
    adapter = adapter_for(version)
    for endpoint in settings.enabled_endpoints():
        path = adapter.path(endpoint)
        try:
            answer = client.get(path)
            data = COLLECTORS[endpoint].parse(adapter, answer.body).data
        except EndpointFailure as e:
            r.fail(f"endpoint {endpoint}", f"[{e.reason}] {e.message}")
            continue
        except SlurmError as e:  # in a 2xx answer: the same reasons as the cycle's
            f = slurm_error_failure(path, answer.status, e)
            r.fail(f"endpoint {endpoint}", f"[{f.reason}] {f.message}")
            continue
        except DecodeError as e:
            r.fail(f"endpoint {endpoint}", f"[decode] GET {path}: {e}")
            continue
        size = f", {len(data)} items" if isinstance(data, list) else ""
        r.ok(
            f"endpoint {endpoint}",
            f"GET {path}: HTTP {answer.status} in {answer.seconds * 1000:.0f} ms{size}",
        )

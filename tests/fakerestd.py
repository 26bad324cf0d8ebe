"""A fake slurmrestd on loopback for fault, soak and security tests.

It serves the recorded answers of one release (tests/fixtures/slurm-R), checks
the JWT of every request the way Slurm's auth/jwt does (HS256 with the key, `exp`
against its own clock), and lets a test inject a fault per path: any status and
body, a hang until released (beyond the client's timeout), a dropped connection,
a truncated body. It can be stopped and started again on the same port.

In a test::

    with FakeSlurmrestd(key=KEY) as srv:
        srv.fault("/slurm/v0.0.45/jobs/", Fault(status=502, body=b"Bad Gateway"))

As a process (the soak test measures the exporter alone, not this server)::

    python3 -m tests.fakerestd --key-file K [--fault-rate 0.2 --seed 1]
    prints "URL=http://127.0.0.1:PORT", serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VERSION = {"22.05": "v0.0.38", "24.11": "v0.0.42", "26.05": "v0.0.45"}
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")


@dataclass
class Fault:
    """What to answer instead of the recorded body (fields combine where it makes sense)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: threading.Event | None = None  # answer only once set (or after hang_max seconds)
    hang_max: float = 30.0
    drop: bool = False  # close the connection without answering
    truncate: bool = False  # announce the full length, send half the body, close
    trickle: threading.Event | None = None  # 64 bytes every 50 ms until set, then close
    echo: bool = False  # the body is the request's headers (a proxy's debug page)
    # only for requests asking for changes (?update_time=); others get the recorded answer
    with_update_time: bool = False


# slurmrestd 23.11 to 26.05.2 on /nodes?update_time= when nodes changed and partitions did
# not (src/slurmrestd/plugins/openapi/slurmctld/nodes.c, _dump_nodes), as 24.11.5 answers it
NODES_UPDATE_TIME_BUG = Fault(
    500,
    json.dumps({
        "errors": [{"description": "Unable to query partitions", "error_number": -1,
                    "error": "Unspecified error", "source": "_dump_nodes"}],
        "warnings": [], "nodes": [],
    }).encode(),
    with_update_time=True,
)


def slurm_error(number: int, error: str, description: str = "") -> bytes:
    return json.dumps(
        {
            "errors": [
                {"error_number": number, "error": error, "description": description,
                 "source": "fake"}
            ],
            "warnings": [],
        }
    ).encode()


def recorded_routes(release: str) -> dict[str, bytes]:
    """Path -> body for /openapi/v3 and the newest version's endpoints."""
    folder = FIXTURES / f"slurm-{release}"
    version = VERSION[release]
    slash = "" if version <= "v0.0.38" else "/"
    routes = {"/openapi/v3": (folder / "openapi_v3.json").read_bytes()}
    for e in ENDPOINTS:
        routes[f"/slurm/{version}/{e}{slash}"] = (folder / f"{version}_{e}.json").read_bytes()
    if slash:  # /shares from v0.0.40, without a "/" (as slurmrestd registers it)
        routes[f"/slurm/{version}/shares"] = (folder / f"{version}_shares.json").read_bytes()
    return routes


class FakeSlurmrestd:
    def __init__(
        self,
        release: str = "26.05",
        key: bytes | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.release = release
        self.version = VERSION[release]
        self.routes = recorded_routes(release)
        self.key = key  # None: no token check
        self.clock = clock
        self.port = port
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.queries: list[str] = []  # the paths with their query strings
        self.random_fault: Callable[[str], Fault | None] | None = None
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def path(self, endpoint: str) -> str:
        slash = "" if self.version <= "v0.0.38" else "/"
        return f"/slurm/{self.version}/{endpoint}{slash}"

    def fault(self, path: str, fault: Fault | None) -> None:
        """Answer `path` with `fault` from now on (None: the recorded answer again)."""
        with self._lock:
            if fault is None:
                self._faults.pop(path, None)
            else:
                self._faults[path] = fault

    def fault_all(self, fault: Fault | None) -> None:
        for p in self.routes:
            self.fault(p, fault)

    def start(self) -> FakeSlurmrestd:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fakerestd",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection (slurmrestd killed)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeSlurmrestd:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ answers
    def answer(self, path: str, headers: dict[str, str]) -> Fault:
        path, _, query = path.partition("?")  # slurmrestd takes ?update_time= on any path
        with self._lock:
            self.requests.append((path, headers))
            self.queries.append(f"{path}?{query}" if query else path)
            fault = self._faults.get(path)
        if fault is not None and fault.with_update_time and "update_time=" not in query:
            fault = None
        if fault is None and self.random_fault is not None:
            fault = self.random_fault(path)
        if fault is not None and fault.echo:
            return Fault(fault.status, json.dumps(headers).encode())
        if fault is not None:
            return fault
        refused = self._check_token(headers)
        if refused is not None:
            return refused
        body = self.routes.get(path)
        if body is None:
            return Fault(404, b"Unable to find requested URL endpoint.")
        return Fault(200, body)

    def _check_token(self, headers: dict[str, str]) -> Fault | None:
        if self.key is None:
            return None
        token = headers.get("x-slurm-user-token")
        if not token:
            return Fault(401, b"Authentication failure")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False},
            )
            exp = float(claims["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return Fault(511, slurm_error(1007, "Protocol authentication error"))
        # what Slurm's auth/jwt checks: the signature and `exp`, on its own clock
        if exp < self.clock():
            return Fault(511, slurm_error(1007, "Protocol authentication error"))
        name = headers.get("x-slurm-user-name")
        if name and name != claims.get("sun"):
            return Fault(511, slurm_error(1007, "Protocol authentication error"))
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlurmrestd

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def close_connections(self) -> None:
        with self.open_lock:
            for s in list(self.open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as slurmrestd
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.open_lock:
            self.server.open.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.open_lock:
                self.server.open.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        f = self.server.fake.answer(self.path, headers)
        if f.hang is not None:
            f.hang.wait(f.hang_max)
        if f.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(f.status)
        ctype = "application/json" if f.body[:1] in (b"{", b"[") else "text/plain"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(f.body)))
        for k, v in f.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if f.trickle is not None:
            for i in range(0, len(f.body), 64):
                self.wfile.write(f.body[i : i + 64])
                self.wfile.flush()
                if f.trickle.wait(0.05):
                    break
            self.close_connection = True
            return
        if f.truncate:
            self.wfile.write(f.body[: len(f.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(f.body)


# ------------------------------------------------------------------ random faults
def random_faults(rate: float, seed: int, hang_seconds: float) -> Callable[[str], Fault | None]:
    """A fault for a `rate` share of requests, of a kind picked at random."""
    rng = random.Random(seed)
    lock = threading.Lock()
    kinds: list[Callable[[], Fault]] = [
        lambda: Fault(500, b""),
        lambda: Fault(502, b"Bad Gateway"),
        lambda: Fault(503, b"Service Unavailable"),
        lambda: Fault(511, slurm_error(1007, "Protocol authentication error")),
        lambda: Fault(401, b"Authentication failure"),
        lambda: Fault(404, b"Unable to find requested URL endpoint."),
        lambda: Fault(200, b"<html>garbage</html>"),
        lambda: Fault(200, b""),
        lambda: Fault(200, b'{"errors": [{"error_number": 1001, "error": "Unable to contact '
                      b'slurm controller (connect failure)"}], "warnings": []}'),
        lambda: Fault(200, b'{"jobs": [{"job_id": "x", "job_state": 7}], "nodes": null, '
                      b'"pings": {}, "statistics": [], "partitions": 1e999}'),
        lambda: Fault(drop=True),
        lambda: Fault(200, b'{"jobs": [' + b'{"job_id": 1}, ' * 2000 + b'{}]}', truncate=True),
        lambda: Fault(200, b"{}", hang=threading.Event(), hang_max=hang_seconds),
    ]

    def pick(path: str) -> Fault | None:
        with lock:
            if rng.random() >= rate:
                return None
            return rng.choice(kinds)()

    return pick


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--release", default="26.05", choices=sorted(VERSION))
    p.add_argument("--key-file", type=Path)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hang-seconds", type=float, default=0.2)
    a = p.parse_args()
    srv = FakeSlurmrestd(a.release, a.key_file.read_bytes() if a.key_file else None)
    if a.fault_rate > 0:
        srv.random_fault = random_faults(a.fault_rate, a.seed, a.hang_seconds)
    srv.start()
    print(f"URL={srv.url}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    print(f"REQUESTS={len(srv.requests)}", flush=True)
    srv.stop()


if __name__ == "__main__":
    main()

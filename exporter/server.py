"""HTTP server: /metrics serves the last snapshot's bytes, never waiting on slurmrestd."""

from __future__ import annotations

import contextlib
import gzip
import html
import io
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from exporter import __version__
from exporter.cycle import Snapshot

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# what generate_latest() writes (prometheus_client's CONTENT_TYPE_LATEST moved on to 1.0.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LANDING = """<!doctype html>
<html><head><title>Slurm exporter</title></head>
<body><h1>Slurm exporter {version}</h1>
<p>Prometheus metrics of the Slurm cluster behind <code>{target}</code>.</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/-/healthy">/-/healthy</a></li></ul>
</body></html>
"""


_LANDING_CLUSTERS = """<!doctype html>
<html><head><title>Slurm exporter</title></head>
<body><h1>Slurm exporter {version}</h1>
<p>Prometheus metrics of each cluster on <code>/probe?target=NAME</code>; the exporter's own
health on <a href="{path}">{path}</a>.</p>
<ul>{links}<li><a href="/-/healthy">/-/healthy</a></li></ul>
</body></html>
"""


def make_app(
    snapshot: Callable[[], Snapshot],
    telemetry_path: str,
    target: str,
    probes: Mapping[str, Callable[[], Snapshot]] | None = None,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """`probes`: with clusters, each cluster's snapshot by name, served on
    /probe?target=NAME (`snapshot` is then the exporter's own health)."""
    landing = _LANDING.format(
        version=__version__, target=html.escape(target), path=telemetry_path
    ).encode()
    if probes is not None:
        links = "".join(
            f'<li><a href="/probe?target={n}">/probe?target={n}</a></li>' for n in probes
        )  # names are CLUSTER_NAME_RE: nothing to escape
        landing = _LANDING_CLUSTERS.format(
            version=__version__, path=telemetry_path, links=links
        ).encode()
    last_gzip: tuple[Snapshot | None, bytes] = (None, b"")

    def gzipped(snap: Snapshot) -> bytes:
        """The snapshot gzipped: by the collection process, else once per snapshot here
        (~4 ms for 20k series: not once per scrape)."""
        nonlocal last_gzip
        if snap.gzipped:
            return snap.gzipped
        done, body = last_gzip
        if done is not snap:
            body = gzip.compress(snap.exposition, compresslevel=1)
            last_gzip = (snap, body)
        return body

    def exposition(
        snap: Snapshot, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        body = snap.exposition
        headers = [("Content-Type", CONTENT_TYPE), ("Vary", "Accept-Encoding")]
        if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzipped(snap)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            return exposition(snapshot(), environ, start_response)
        if path == "/probe":
            chosen = _probe_target(environ.get("QUERY_STRING", ""), probes)
            if isinstance(chosen, bytes):  # why not
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [chosen]
            return exposition(chosen(), environ, start_response)
        if path == "/-/healthy":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"OK\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]

    return app


def _probe_target(
    query: str, probes: Mapping[str, Callable[[], Snapshot]] | None
) -> Callable[[], Snapshot] | bytes:
    """The snapshot of the cluster that /probe?target=NAME names, or why not (the text
    of a 400). Only a configured name is ever looked up: the exporter never calls a
    host that a request names."""
    if probes is None:
        return (
            b"no clusters configured: /probe serves the clusters of --config-file's clusters "
            b"table; this exporter serves its one cluster on /metrics\n"
        )
    known = ", ".join(probes)
    targets = urllib.parse.parse_qs(query).get("target", [])
    if len(targets) != 1:
        return f"give one target: /probe?target=NAME (targets: {known})\n".encode()
    chosen = probes.get(targets[0])
    if chosen is None:
        shown = repr(targets[0][:100])
        return f"unknown target {shown} (targets: {known})\n".encode(errors="replace")
    return chosen


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip: named (or "*" when it is not named)
    with a q-value above 0 (RFC 9110, 12.5.3: "gzip;q=0" refuses it)."""
    named: float | None = None
    star: float | None = None
    for member in accept_encoding.split(","):
        coding, *params = (part.strip() for part in member.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # not a weight: not a clear yes
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = max(named or 0.0, q)
        elif coding == "*":
            star = q
    chosen = named if named is not None else star
    return chosen is not None and chosen > 0


# --- serving: one thread watches every connection; a few threads answer -------------
# A client controls how fast it sends: it must have sent its request (and finished its TLS
# handshake) within REQUEST_HEAD_SECONDS, and be done with the answer within
# CONNECTION_SECONDS. Reading and writing never hold a thread, so slow or silent clients
# cost a socket each, up to max_connections; beyond that, the oldest connection still
# waiting for its request is dropped for the new one (a scraper sends its request at once).
REQUEST_HEAD_SECONDS = 10.0
CONNECTION_SECONDS = 60.0
MAX_REQUEST_HEAD = 64 << 10  # bytes of request line and headers
_ANSWER_THREADS = 4  # answers are the snapshot's bytes, or a bcrypt check (basic auth)


class _Handler(WSGIRequestHandler):
    """wsgiref's request handling, on a request already read, into bytes to send."""

    def __init__(self, head: bytes, client_address: Any, server: Any) -> None:
        self.client_address = client_address
        self.server = server
        self.rfile = io.BytesIO(head)
        self.answer = self.wfile = io.BytesIO()
        self.handle()

    def address_string(self) -> str:
        return str(self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    address: Any
    started: float
    state: str = "handshake"  # handshake, read, answer, write
    head: bytearray = field(default_factory=bytearray)
    out: memoryview = field(default_factory=lambda: memoryview(b""))


class MetricsServer:
    """The HTTP(S) server: `serve_forever` in a thread, `shutdown` to stop it."""

    def __init__(
        self,
        listener: socket.socket,
        app: App,
        tls: ssl.SSLContext | None = None,
        max_connections: int = 256,
        head_seconds: float = REQUEST_HEAD_SECONDS,
        connection_seconds: float = CONNECTION_SECONDS,
    ) -> None:
        self._listener = listener
        self._app = app
        self._tls = tls
        self._max = max_connections
        self._head_seconds = head_seconds
        self._connection_seconds = connection_seconds
        self._conns: dict[socket.socket, _Conn] = {}  # in accept order: oldest first
        self._selector = selectors.DefaultSelector()
        self._answers = ThreadPoolExecutor(_ANSWER_THREADS, thread_name_prefix="http-answer")
        self._done: queue.SimpleQueue[tuple[_Conn, bytes]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        host, port = listener.getsockname()[:2]
        self.server_port: int = port
        self.base_environ = {
            "SERVER_NAME": socket.getfqdn(host) if host else "localhost",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PORT": str(port),
            "REMOTE_HOST": "",
            "CONTENT_LENGTH": "",
            "SCRIPT_NAME": "",
        }

    @property
    def connections(self) -> int:
        return len(self._conns)

    def get_app(self) -> App:  # what wsgiref's handler asks its server for
        return self._app

    def serve_forever(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        expired_at = 0.0
        try:
            while not self._stopping.is_set():
                for key, events in self._selector.select(timeout=0.25):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._wake_r.recv(4096)
                        self._take_answers()
                    else:
                        self._step(key.data, events)
                now = time.monotonic()
                if now - expired_at > 0.1:  # not after every event: a scan of them all
                    self._expire(now)
                    expired_at = now
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._selector.close()
            self._stopped.set()

    def shutdown(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait(10)
        self._answers.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    # ---------------------------------------------------------------- connections
    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, then the others get a turn
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors: drop a waiting one
                log.debug("http: accept failed: %s", e)
                self._make_room(force=True)
                return
            if len(self._conns) >= self._max and not self._make_room():
                sock.close()  # every slot is busy answering: come back later
                continue
            sock.setblocking(False)
            conn = _Conn(sock, address, time.monotonic(), "read")
            if self._tls is not None:
                try:
                    conn.sock = self._tls.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                except (OSError, ValueError):
                    sock.close()
                    continue
                conn.state = "handshake"
            self._conns[conn.sock] = conn
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _make_room(self, force: bool = False) -> bool:
        """Drop the oldest connection that has not sent its request yet."""
        for conn in self._conns.values():
            if conn.state in ("handshake", "read") or force:
                log.debug("http: %d connections open: dropping %s's", len(self._conns),
                          conn.address)
                self._close(conn)
                return True
        return False

    def _expire(self, now: float) -> None:
        for conn in list(self._conns.values()):
            age = now - conn.started
            waiting = conn.state in ("handshake", "read")
            if (waiting and age > self._head_seconds) or age > self._connection_seconds:
                log.debug("http: %s: no %s within the deadline", conn.address,
                          "request" if waiting else "complete answer")
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _wait_for(self, conn: _Conn, events: int) -> None:
        self._selector.modify(conn.sock, events, conn)

    # ------------------------------------------------------------------ one step
    def _step(self, conn: _Conn, events: int) -> None:
        try:
            if conn.state == "handshake":
                self._handshake(conn)
            elif conn.state == "read":
                self._read(conn)
            elif conn.state == "write":
                self._write(conn)
        except ssl.SSLWantReadError:
            self._wait_for(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._wait_for(conn, selectors.EVENT_WRITE)
        except (BlockingIOError, InterruptedError):
            pass
        except (OSError, ValueError) as e:  # a failed TLS handshake, a client gone
            log.debug("http: %s: %s", conn.address, e)
            self._close(conn)

    def _handshake(self, conn: _Conn) -> None:
        assert isinstance(conn.sock, ssl.SSLSocket)
        conn.sock.do_handshake()
        conn.state = "read"
        self._wait_for(conn, selectors.EVENT_READ)
        self._read(conn)  # TLS may hold the request already

    def _read(self, conn: _Conn) -> None:
        data = conn.sock.recv(65536)
        if not data:
            self._close(conn)
            return
        conn.head += data
        if b"\r\n\r\n" in conn.head or b"\n\n" in conn.head:
            conn.state = "answer"
            self._selector.unregister(conn.sock)
            self._answers.submit(self._answer, conn, bytes(conn.head))
        elif len(conn.head) > MAX_REQUEST_HEAD:
            log.debug("http: %s: request head over %d bytes", conn.address, MAX_REQUEST_HEAD)
            self._close(conn)

    def _answer(self, conn: _Conn, head: bytes) -> None:
        """In an answer thread: the whole response, handed back to the loop."""
        try:
            out = _Handler(head, conn.address, self).answer.getvalue()
        except Exception:  # never the server's end
            log.debug("http: %s: answer failed", conn.address, exc_info=True)
            out = b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
        self._done.put((conn, out))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _take_answers(self) -> None:
        while not self._done.empty():
            conn, out = self._done.get()
            if conn.sock not in self._conns:
                continue  # gone past its deadline meanwhile
            conn.state, conn.out = "write", memoryview(out)
            self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
            self._step(conn, selectors.EVENT_WRITE)

    def _write(self, conn: _Conn) -> None:
        while conn.out:
            sent = conn.sock.send(conn.out[:1 << 20])
            conn.out = conn.out[sent:]
        with contextlib.suppress(OSError):  # the answer ends with the connection
            if not isinstance(conn.sock, ssl.SSLSocket):
                conn.sock.shutdown(socket.SHUT_WR)
        self._close(conn)


def serve(
    host: str,
    port: int,
    app: App,
    tls: ssl.SSLContext | None = None,
    max_connections: int = 256,
) -> tuple[MetricsServer, threading.Thread]:
    """Start serving in a daemon thread; returns the server (for shutdown) and the thread.

    With `tls`, every connection is TLS; its handshake is one more step of the connection
    in the serving thread, so a slow or broken client never holds up the others.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as e:  # its strerror also names the address, which the caller says
        raise OSError(e.errno, os.strerror(e.errno) if e.errno else str(e)) from None
    httpd = MetricsServer(listener, app, tls, max_connections)
    thread = threading.Thread(target=httpd.serve_forever, name="http", daemon=True)
    thread.start()
    return httpd, thread

"""HTTP server: /metrics serves the last snapshot's bytes, never waiting on slurmrestd."""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from exporter import __version__
from exporter.cycle import Snapshot

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
# what generate_latest() writes (prometheus_client's CONTENT_TYPE_LATEST moved on to 1.0.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LANDING = """<!doctype html>
<html><head><title>Slurm exporter</title></head>
<body><h1>Slurm exporter {version}</h1>
<p>Prometheus metrics of the Slurm cluster behind <code>{target}</code>.</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/-/healthy">/-/healthy</a></li></ul>
</body></html>
"""


def make_app(
    snapshot: Callable[[], Snapshot], telemetry_path: str, target: str
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    landing = _LANDING.format(version=__version__, target=target, path=telemetry_path).encode()
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

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            snap = snapshot()
            body = snap.exposition
            headers = [("Content-Type", CONTENT_TYPE)]
            if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
                body = gzipped(snap)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        if path == "/-/healthy":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"OK\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a failed TLS handshake, a client gone mid-answer: not worth a traceback on stderr
        log.debug("http: request from %s failed", client_address, exc_info=True)


class _IPv6Server(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = 60  # seconds a client may stay silent (or half-way through a TLS handshake)
    # Buffered: the socket's partial writes of a 1 MB page are then looped over in C,
    # not by wsgiref copying the rest of the page after each one.
    wbufsize = 1 << 16

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def serve(
    host: str,
    port: int,
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    tls: ssl.SSLContext | None = None,
) -> tuple[WSGIServer, threading.Thread]:
    """Start serving in a daemon thread; returns the server (for shutdown) and the thread.

    With `tls`, every connection is TLS; the handshake happens in the connection's own
    thread, so a slow or broken client never holds up the others.
    """
    server_class = _IPv6Server if ":" in host else _ThreadingServer
    httpd = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    thread = threading.Thread(target=httpd.serve_forever, name="http", daemon=True)
    thread.start()
    return httpd, thread

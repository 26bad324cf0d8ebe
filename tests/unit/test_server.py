"""/metrics serves the snapshot's bytes as they are; nothing else is computed per request."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import statistics
import threading
import time

import httpx
import pytest

from exporter.cycle import Snapshot
from exporter.server import MetricsServer, make_app, serve


def test_metrics_landing_health_and_404() -> None:
    snap = Snapshot(exposition=b"# TYPE x gauge\nx 1.0\n", created_at=1.0, all_up=True)
    calls = threading.Semaphore(0)

    def current() -> Snapshot:
        calls.release()
        return snap

    httpd, _ = serve("127.0.0.1", 0, make_app(current, "/metrics", "http://slurm:6820"))
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        r = httpx.get(base + "/metrics", headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200 and r.content == snap.exposition
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        raw = httpx.get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.content == snap.exposition  # httpx decompressed it
        assert gzip.decompress(gzip.compress(snap.exposition)) == snap.exposition
        assert "/metrics" in httpx.get(base + "/").text
        assert httpx.get(base + "/-/healthy").text == "OK\n"
        assert httpx.get(base + "/nope").status_code == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert calls.acquire(timeout=0)  # the snapshot was read per request


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP;Q=1.0", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("gzip; q=0.000", False),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # named beats the wildcard
        ("identity", False),
        ("identity, *;q=0.1", True),
        ("", False),
        ("gzipped", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_gzip_only_when_accepted_and_the_answer_varies_on_it(header: str, gzipped: bool) -> None:
    snap = Snapshot(exposition=b"# TYPE x gauge\nx 1.0\n", created_at=1.0, all_up=True)
    httpd, _ = serve("127.0.0.1", 0, make_app(lambda: snap, "/metrics", "x"))
    try:
        with httpx.Client() as c:
            r = c.get(f"http://127.0.0.1:{httpd.server_port}/metrics",
                      headers={"Accept-Encoding": header})
        assert r.headers.get("content-encoding") == ("gzip" if gzipped else None)
        assert r.headers["vary"] == "Accept-Encoding"
        assert r.content == snap.exposition
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- slow and half-open clients ---------------------------------------------------------
PAGE = b"# TYPE x gauge\n" + b"".join(b'x{i="%d"} 1.0\n' % i for i in range(20_000))


def _scrape(port: int) -> float:
    """Seconds for one scrape on a new connection, as Prometheus makes them."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    conn.close()
    assert body == PAGE
    return time.perf_counter() - t0


def _quantiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=100)
    return statistics.median(xs), q[98]


def test_slow_and_half_open_clients_neither_exhaust_the_server_nor_delay_a_scrape() -> None:
    """1,000 clients: half connect and send nothing, half send a request a byte at a time.
    The server's threads stay as they were, its open connections stay under the cap, and
    a scrape takes what it takes without them."""
    snap = Snapshot(exposition=PAGE, created_at=1.0, all_up=True)
    httpd, _ = serve("127.0.0.1", 0, make_app(lambda: snap, "/metrics", "x"))
    port = httpd.server_port
    stop = threading.Event()
    clients: list[socket.socket] = []
    try:
        baseline = [_scrape(port) for _ in range(100)]
        threads = threading.active_count()
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            clients.append(s)

        def trickle() -> None:  # one more header byte, now and then, from every slow one
            while not stop.wait(0.05):
                for s in clients[1::2]:
                    with contextlib.suppress(OSError):
                        s.send(b"X")

        slow = threading.Thread(target=trickle, daemon=True)
        slow.start()
        loaded = [_scrape(port) for _ in range(100)]
        grown = threading.active_count() - threads - 1  # the trickling thread is ours
        open_now = getattr(httpd, "connections", -1)  # (the old server had no count)
    finally:
        stop.set()
        for s in clients:
            s.close()
        httpd.shutdown()
        httpd.server_close()
    (b50, b99), (l50, l99) = _quantiles(baseline), _quantiles(loaded)
    print(f"\nscrape of {len(PAGE)} bytes, new connection each: alone p50 {b50 * 1e3:.2f} ms "
          f"p99 {b99 * 1e3:.2f} ms; beside 1,000 slow/half-open clients p50 {l50 * 1e3:.2f} ms "
          f"p99 {l99 * 1e3:.2f} ms; server threads +{grown}, open connections {open_now}")
    assert grown <= 4  # at most the answer threads not started yet
    assert open_now <= 256
    assert l50 < b50 * 2 + 0.005 and l99 < 0.25, (b50, b99, l50, l99)


def test_a_request_must_arrive_within_its_deadline_however_it_trickles() -> None:
    """The deadline is on the whole request, not on each read: a client sending a byte
    every 50 ms, or nothing, is cut at the deadline."""
    listener = socket.create_server(("127.0.0.1", 0))
    httpd = MetricsServer(listener, make_app(lambda: Snapshot(b"x 1\n", 1.0, True), "/m", "x"),
                          head_seconds=0.5)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_port
    try:
        silent = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        t0 = time.monotonic()
        cut = None
        for byte in b"GET /m HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000:
            try:
                slow.send(bytes([byte]))
            except OSError:
                cut = time.monotonic() - t0
                break
            time.sleep(0.05)  # the slowness under test
        assert cut is not None and 0.5 <= cut < 3
        silent.settimeout(3)
        assert silent.recv(1) == b""  # closed, with nothing said
        assert time.monotonic() - t0 < 3
        assert httpd.connections == 0
        assert _scrape_small(port) == b"x 1\n"  # and the server goes on
    finally:
        httpd.shutdown()
        httpd.server_close()


def _scrape_small(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/m")
    body = conn.getresponse().read()
    conn.close()
    return body

"""/metrics serves the snapshot's bytes as they are; nothing else is computed per request."""

from __future__ import annotations

import gzip
import threading

import httpx

from exporter.cycle import Snapshot
from exporter.server import make_app, serve


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

"""A loopback slurmrestd that replays a generated dataset (benchmarks/generate.py).

    python3 -m benchmarks.replay --data DIR --jwt-key-file KEY [--listen 127.0.0.1:0]
        [--auth-style 24.11|22.05] [--no-auth] [--fault SPEC ...] [--seed N]

Prints `URL=http://127.0.0.1:PORT` on stdout once it listens, and serves until killed
(or until its stdin closes, with --stdin-stop). Point any exporter at that URL.

Routes, as slurmrestd serves them:

- `GET /openapi/v3` and `GET /slurm/<version>/<endpoint>/` (no trailing slash up to
  v0.0.38; both are accepted) for the files `<version>_<endpoint>.json` in DIR; other
  paths answer 404 with slurmrestd's text. Bodies go out with sendfile(), so the server
  costs little CPU even at 900 MB.
- `?update_time=T`: when T is not older than the data (its `last_update`, or the last
  `/-/replay/touch`), `/nodes` answers 304 with an empty body and `/jobs` answers 200
  with no jobs and the warning "No job changes since update_time=T", as slurmrestd does.

Authentication, like Slurm's auth/jwt (HS256 with the key file): no
`X-SLURM-USER-TOKEN` -> 401 "Authentication failure"; a token that is malformed, signed
with another key, expired, without `sun`, or whose `sun` differs from
`X-SLURM-USER-NAME` -> 511 with Slurm's JSON error 1007 (24.11+); `--auth-style 22.05`
answers 500 with error -1 instead. `--no-auth` turns checking off.

Fault injection (for soak and failure tests), as rules tried in order; the first rule
whose `path` regex matches (re.search on the path, query excluded) applies:

    {"path": "/jobs",       # regex; default: every path
     "status": 503,         # answer this status instead (body: "body", or Slurm's JSON
                            #   error envelope for >= 400)
     "body": "text",        # body to send with "status"
     "delay": 2.5,          # seconds to wait before answering
     "drop": true,          # close the connection without answering
     "truncate": 0.5,       # send only this share (0-1) or this many bytes (> 1) of the
                            #   body, then close; Content-Length still announces it all
     "stall": 3.0,          # pause this long halfway through the (truncated) body
     "rate": 50e6,          # send the body at this many bytes per second
     "times": 2,            # apply to the next 2 matching requests only, then drop the rule
     "every": 3,            # apply to every 3rd matching request only
     "probability": 0.2}    # apply to each matching request with this probability (--seed)

from the command line as `--fault 'path=/jobs,status=503,times=2'` (repeatable), or
at run time through the control endpoints (no token needed, loopback only):

    GET    /-/replay/faults          the rules in force
    POST   /-/replay/faults          add a rule (a JSON object) or rules (a list)
    DELETE /-/replay/faults          remove all rules
    POST   /-/replay/touch           the data changed now (update_time no longer matches)
    POST   /-/replay/data            {"dir": "/path"}: serve another generated dataset
    GET    /-/replay/stats           requests by path and status, bytes sent, last requests
    GET    /-/healthy                200 OK
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

NOT_FOUND = (
    b"Unable to find requested URL endpoint. Please query the '/openapi/v3' endpoint or "
    b"visit 'https://slurm.schedmd.com/rest_api.html' for the OpenAPI specification which "
    b"includes a list of all possible slurmrestd endpoints."
)
_PATH = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/([a-z_]+)/?$")


@dataclass
class Fault:
    path: str = ""
    status: int | None = None
    body: str | None = None
    delay: float = 0.0
    drop: bool = False
    truncate: float | None = None
    stall: float = 0.0
    rate: float | None = None
    times: int | None = None
    every: int | None = None
    probability: float | None = None
    seen: int = field(default=0, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        known = {f for f in cls.__dataclass_fields__ if f != "seen"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        f = cls(**d)
        re.compile(f.path)
        return f

    @classmethod
    def from_spec(cls, spec: str) -> Fault:
        """`path=/jobs,status=503,times=2` (values as JSON when they parse as JSON)."""
        d: dict[str, Any] = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault {spec!r}: expected key=value, got {item!r}")
            try:
                d[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                d[key.strip()] = value
        if "path" in d:
            d["path"] = str(d["path"])
        return cls.from_dict(d)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, 0, 0.0, False, "")
                or k == "path"}


class Replay:
    """State shared by the request handlers: dataset, key, rules, statistics."""

    def __init__(self, data: Path, key: bytes | None, auth_style: str = "24.11",
                 seed: int = 0) -> None:
        self.lock = threading.Lock()
        self.key = key
        self.auth_style = auth_style
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.stats: Counter[str] = Counter()
        self.bytes_sent = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=1000)
        self.touched = 0.0
        self.set_data(data)

    def set_data(self, data: Path) -> None:
        manifest_file = data / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
        with self.lock:
            self.data = data
            self.last_update = float(manifest.get("last_update", 0))

    def changed_at(self) -> float:
        return max(self.last_update, self.touched)

    def pick_fault(self, path: str) -> Fault | None:
        with self.lock:
            for f in list(self.faults):
                if f.path and not re.search(f.path, path):
                    continue
                f.seen += 1
                if f.every and f.seen % f.every:
                    continue
                if f.probability is not None and self.rng.random() >= f.probability:
                    continue
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                return f
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              fault: Fault | None = None) -> None:
        self._send_head(status, len(body), ctype)
        self._body_from(lambda off, n: self.wfile.write(body[off:off + n]), len(body), fault)

    def _send_head(self, status: int, length: int, ctype: str) -> None:
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()
        self._status = status

    def _body_from(self, write: Any, length: int, fault: Fault | None) -> None:
        """Send `length` bytes with write(offset, count), applying truncate/stall/rate."""
        end = length
        if fault is not None and fault.truncate is not None:
            t = fault.truncate
            end = int(length * t) if 0 < t < 1 else min(length, int(t))
        stall_at = end // 2 if fault is not None and fault.stall else None
        rate = fault.rate if fault is not None else None
        paced = rate is not None or stall_at is not None
        off = 0
        t0 = time.monotonic()
        while off < end:
            stop = stall_at if stall_at is not None and off < stall_at else end
            n = min(1 << 20, stop - off) if paced else stop - off
            write(off, n)
            off += n
            if stall_at is not None and off == stall_at:
                assert fault is not None
                time.sleep(fault.stall)
                stall_at = None
            if rate:
                ahead = off / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        self._sent = off
        if end < length:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _send_file(self, path: Path, fault: Fault | None) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            length = os.fstat(fd).st_size
            self._send_head(200, length, "application/json")
            sock = self.connection

            def write(off: int, n: int) -> None:
                while n > 0:
                    sent = os.sendfile(sock.fileno(), fd, off, n)
                    if sent == 0:
                        raise BrokenPipeError
                    off += sent
                    n -= sent

            self._body_from(write, length, fault)
        finally:
            os.close(fd)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, (json.dumps(obj, indent=2) + "\n").encode())

    def _slurm_error(self, status: int, number: int, error: str, description: str) -> bytes:
        doc = {
            "errors": [{"description": description, "error_number": number, "error": error,
                        "source": "replay"}],
            "warnings": [],
            "meta": {"plugin": {"type": "openapi/slurmctld", "name": "replay"}},
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    # ------------------------------------------------------------------- routes
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        replay = self.server.replay
        t0 = time.time()
        self._status, self._sent = 0, 0
        url = urlsplit(self.path)
        path = url.path
        try:
            if path.startswith("/-/"):
                self._control(method, path)
                return
            fault = replay.pick_fault(path)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if method != "GET":
                self._send(405, b"Method Not Allowed", "text/plain")
                return
            if not self._authorised():
                return
            if fault is not None and fault.status is not None:
                body = (fault.body.encode() if fault.body is not None else
                        self._slurm_error(fault.status, 9000, "Injected fault",
                                          f"replay fault on {path}")
                        if fault.status >= 400 else b"")
                self._send(fault.status, body, fault=fault)
                return
            self._serve(path, parse_qs(url.query), fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if not path.startswith("/-/"):
                with replay.lock:
                    replay.stats[f"{path} {self._status}"] += 1
                    replay.bytes_sent += self._sent
                    replay.recent.append({"path": self.path, "status": self._status,
                                          "start": t0, "end": time.time(),
                                          "bytes": self._sent})

    def _serve(self, path: str, query: dict[str, list[str]], fault: Fault | None) -> None:
        replay = self.server.replay
        data = replay.data
        if path == "/openapi/v3":
            self._send_file(data / "openapi_v3.json", fault)
            return
        m = _PATH.match(path)
        file = data / f"{m.group(1)}_{m.group(2)}.json" if m else None
        if m is None or file is None or not file.exists():
            self._send(404, NOT_FOUND, "text/plain")
            return
        version, endpoint = m.group(1), m.group(2)
        since = query.get("update_time", [""])[0]
        if since.isdigit() and int(since) >= replay.changed_at():
            if endpoint == "nodes":
                self._send_head(304, 0, "")
                return
            unchanged = data / f"{version}_jobs_unchanged.json"
            if endpoint == "jobs" and unchanged.exists():
                body = unchanged.read_bytes().replace(b"update_time=0", f"update_time={since}"
                                                      .encode())
                self._send(200, body, fault=fault)
                return
        self._send_file(file, fault)

    def _authorised(self) -> bool:
        replay = self.server.replay
        if replay.key is None:
            return True
        token = self.headers.get("X-SLURM-USER-TOKEN")
        if not token:
            self._send(401, b"Authentication failure", "text/plain")
            return False
        try:
            claims = jwt.decode(token, replay.key, algorithms=["HS256"],
                                options={"require": ["exp"]})
            sun = claims.get("sun")
            if not isinstance(sun, str) or not sun:
                raise jwt.InvalidTokenError("no sun")
            user = self.headers.get("X-SLURM-USER-NAME")
            if user and user != sun:
                raise jwt.InvalidTokenError("user name differs from sun")
        except jwt.PyJWTError:
            if replay.auth_style == "22.05":
                self._send(500, self._slurm_error(500, -1, "Unspecified error",
                                                  "authentication failed"))
            else:
                self._send(511, self._slurm_error(511, 1007, "Protocol authentication error",
                                                  "authentication failed"))
            return False
        return True

    def _control(self, method: str, path: str) -> None:
        replay = self.server.replay
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if path == "/-/healthy":
                self._send(200, b"OK\n", "text/plain")
            elif path == "/-/replay/faults" and method == "GET":
                with replay.lock:
                    self._json(200, [f.public() for f in replay.faults])
            elif path == "/-/replay/faults" and method == "POST":
                doc = json.loads(raw or b"{}")
                rules = [Fault.from_dict(d) for d in (doc if isinstance(doc, list) else [doc])]
                with replay.lock:
                    replay.faults.extend(rules)
                self._json(200, [f.public() for f in rules])
            elif path == "/-/replay/faults" and method == "DELETE":
                with replay.lock:
                    replay.faults.clear()
                self._json(200, [])
            elif path == "/-/replay/touch" and method == "POST":
                replay.touched = time.time()
                self._json(200, {"changed_at": replay.changed_at()})
            elif path == "/-/replay/data" and method == "POST":
                new = Path(json.loads(raw)["dir"])
                if not (new / "openapi_v3.json").exists():
                    raise ValueError(f"{new}: no openapi_v3.json there")
                replay.set_data(new)
                self._json(200, {"dir": str(new)})
            elif path == "/-/replay/stats" and method == "GET":
                with replay.lock:
                    self._json(200, {"requests": dict(replay.stats),
                                     "bytes_sent": replay.bytes_sent,
                                     "recent": list(replay.recent)[-50:]})
            else:
                self._send(404, b"no such control endpoint\n", "text/plain")
        except (ValueError, KeyError, TypeError) as e:
            self._json(400, {"error": str(e)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    replay: Replay


def start(data: Path, key: bytes | None, host: str = "127.0.0.1", port: int = 0,
          auth_style: str = "24.11", faults: list[Fault] | None = None,
          seed: int = 0) -> tuple[_Server, threading.Thread]:
    """Serve in a daemon thread (for tests); returns the server and its thread."""
    server = _Server((host, port), Handler)
    server.replay = Replay(data, key, auth_style, seed)
    server.replay.faults.extend(faults or [])
    thread = threading.Thread(target=server.serve_forever, name="replay", daemon=True)
    thread.start()
    return server, thread


def url_of(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.replay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a generated dataset")
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any free)")
    ap.add_argument("--jwt-key-file", type=Path, help="HS256 key that tokens must be signed with")
    ap.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    ap.add_argument("--auth-style", choices=("24.11", "22.05"), default="24.11")
    ap.add_argument("--fault", action="append", default=[], metavar="SPEC",
                    help="a fault rule, e.g. 'path=/jobs,status=503,times=2' (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="for faults with a probability")
    ap.add_argument("--stdin-stop", action="store_true", help="stop when stdin closes")
    args = ap.parse_args(argv)
    if args.jwt_key_file is None and not args.no_auth:
        ap.error("give --jwt-key-file, or --no-auth")
    key = None if args.no_auth else args.jwt_key_file.read_bytes()
    host, _, port = args.listen.rpartition(":")
    server, thread = start(args.data, key, host or "127.0.0.1", int(port), args.auth_style,
                           [Fault.from_spec(s) for s in args.fault], args.seed)
    print(f"URL={url_of(server)}", flush=True)
    try:
        if args.stdin_stop:
            sys.stdin.read()
        else:
            thread.join()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

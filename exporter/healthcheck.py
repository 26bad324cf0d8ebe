"""`slurm-exporter healthcheck`: is the exporter's HTTP server answering? (the container's
HEALTHCHECK). Exit 0 when /-/healthy answers, 1 otherwise, with one line saying which.

A health check does not get the container's arguments, only its environment: without
flags of its own it reads the listen address and the web config from the running
exporter's command line when that is the container's PID 1 (its entrypoint), so
`docker run IMAGE --listen-address :9000` is checked on :9000.
"""

from __future__ import annotations

import http.client
import os
import ssl
from pathlib import Path

from exporter.settings import ConfigError, load_settings, parse_listen_address

TIMEOUT = 4.0  # seconds; Docker's default --timeout is 30 s, the Dockerfile's 5 s


def exporter_arguments(cmdline: Path = Path("/proc/1/cmdline")) -> list[str]:
    """The flags of a slurm-exporter server running as `cmdline`'s process, else []."""
    try:
        argv = cmdline.read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []
    # the entrypoint script runs as `python .../slurm-exporter FLAGS`; or `python -m exporter`
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "slurm-exporter" or argv[i - 1:i + 1] == ["-m", "exporter"]:
            flags = argv[i + 1:]
            return [] if flags[:1] in (["check"], ["healthcheck"]) else flags
    return []


def probe_target(args: list[str]) -> tuple[str, ssl.SSLContext | None, bool]:
    """(host:port to call, TLS context or None, whether basic auth is on), from settings."""
    settings = load_settings(args)
    host, port = parse_listen_address(settings.listen_address)
    # a wildcard address is reached on loopback
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    tls, auth = None, False
    if settings.web_config_file is not None:
        from exporter.webconfig import load_web_config

        web = load_web_config(settings.web_config_file)
        auth = bool(web.users)
        if web.tls is not None:
            # our own server on loopback: whether it answers matters, not who it is
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
    return (f"[{host}]" if ":" in host else host) + f":{port}", tls, auth


def run_healthcheck(args: list[str], pid1: Path = Path("/proc/1/cmdline")) -> int:
    from exporter.webconfig import WebConfigError

    try:
        address, tls, auth = probe_target(args or exporter_arguments(pid1))
    except (ConfigError, WebConfigError) as e:
        print(f"unhealthy: cannot tell where the exporter listens: {e}")
        return 1
    url = f"{'https' if tls else 'http'}://{address}/-/healthy"
    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection(address, timeout=TIMEOUT, context=tls)
    else:
        conn = http.client.HTTPConnection(address, timeout=TIMEOUT)
    try:
        conn.request("GET", "/-/healthy")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        print(f"unhealthy: {url}: {getattr(e, 'strerror', None) or e}")
        return 1
    finally:
        conn.close()
    # with basic auth the server refuses us, which proves it serves
    if status == 200 or (auth and status == 401):
        print(f"healthy: {url} answered {status}")
        return 0
    print(f"unhealthy: {url} answered {status}")
    return 1

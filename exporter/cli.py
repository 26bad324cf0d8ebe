"""Command line: `slurm-exporter [flags]`, `slurm-exporter --once`, `slurm-exporter check`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from exporter import __version__
from exporter.settings import ConfigError, Settings, load_settings, parse_listen_address

log = logging.getLogger("exporter")

USAGE_EXTRA = """
subcommands:
  slurm-exporter check [flags]   probe slurmrestd with these settings and explain every problem
  slurm-exporter healthcheck [flags]
                                 exit 0 if the exporter's /-/healthy answers (the container's
                                 HEALTHCHECK; without flags: the flags of the exporter that
                                 runs as PID 1, else the SLURM_EXPORTER_* variables)

Settings may also come from SLURM_EXPORTER_<FLAG> variables (e.g. SLURM_EXPORTER_INTERVAL=60)
and from --config-file (TOML or YAML). A static token is read from SLURM_JWT.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["version"]):
        print(f"slurm-exporter {__version__}")
        return 0
    command = "run"
    if args[:1] == ["healthcheck"] and not {"-h", "--help"} & set(args):
        from exporter.healthcheck import run_healthcheck

        return run_healthcheck(args[1:])
    if args[:1] == ["check"]:
        command, args = "check", args[1:]
    if any(a in ("-h", "--help") for a in args):
        try:
            load_settings(["--help"])
        except SystemExit:
            print(USAGE_EXTRA)
        return 0
    try:
        settings = load_settings(args)
    except ConfigError as e:
        print(f"slurm-exporter: {e}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if command == "check":
        from exporter.check import run_check  # only `check` needs it

        return run_check(settings)
    return _run(settings)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def _run(settings: Settings) -> int:
    from exporter.auth import AuthError, token_source_from_settings
    from exporter.client import SlurmrestdClient
    from exporter.cycle import Collection

    try:
        tokens = token_source_from_settings(settings)
    except AuthError as e:
        print(f"slurm-exporter: {e}", file=sys.stderr)
        return 2
    collection = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    if settings.once:
        try:
            snap = collection.run_once()
        finally:
            collection.close()
        sys.stdout.buffer.write(snap.exposition)
        sys.stdout.flush()
        for endpoint, failure in snap.failures:
            print(f"{endpoint}: {failure.reason}: {failure.message}", file=sys.stderr)
        return 0 if snap.all_up else 1

    from exporter.server import make_app, serve
    from exporter.webconfig import WebConfig, WebConfigError, load_web_config, protect

    web = WebConfig(path=Path())
    if settings.web_config_file is not None:
        try:
            web = load_web_config(settings.web_config_file)
        except WebConfigError as e:
            collection.close()
            print(f"slurm-exporter: {e}", file=sys.stderr)
            return 2
    host, port = parse_listen_address(settings.listen_address)
    app = make_app(lambda: collection.snapshot, settings.telemetry_path, settings.slurmrestd_url)
    app = protect(app, web)
    try:
        httpd, _ = serve(host, port, app, web.tls)
    except OSError as e:
        print(
            f"slurm-exporter: cannot listen on {settings.listen_address}: {e.strerror}; "
            "choose another --listen-address",
            file=sys.stderr,
        )
        return 2
    log.info(
        "serving %s://%s:%d%s%s, reading %s every %gs (token %s)",
        web.scheme,
        host or "0.0.0.0",
        port,
        settings.telemetry_path,
        " with basic auth" if web.users else "",
        settings.slurmrestd_url,
        settings.interval,
        tokens.description,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        collection.run_forever(stop)
    finally:
        httpd.shutdown()
        collection.close()
    return 0

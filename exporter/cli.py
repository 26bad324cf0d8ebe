"""Command line: `slurm-exporter [flags]`, `slurm-exporter --once`, `slurm-exporter check`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from exporter import __version__
from exporter.auth import AuthError, TokenSource, start_up_check, token_source_from_settings
from exporter.logs import setup_logging
from exporter.settings import (
    ConfigError,
    Settings,
    help_text,
    load_settings,
    parse_listen_address,
)

log = logging.getLogger("exporter")

USAGE_EXTRA = """
subcommands:
  slurm-exporter check [flags]   probe slurmrestd with these settings and explain every problem
  slurm-exporter healthcheck [flags]
                                 exit 0 if the exporter's /-/healthy answers (the container's
                                 HEALTHCHECK; without flags: the flags of the exporter that
                                 runs as PID 1, else the SLURM_EXPORTER_* variables)

Settings may also come from SLURM_EXPORTER_<FLAG> variables (e.g. SLURM_EXPORTER_INTERVAL=60)
and from --config-file (TOML, YAML or JSON). A static token is read from SLURM_JWT.
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
        print(help_text() + USAGE_EXTRA)
        return 0
    try:
        settings = load_settings(args)
    except ConfigError as e:
        return _refuse(str(e))
    setup_logging(settings.log_level)
    # the same start-up checks in every mode: bad configuration stops here, exit 2
    try:
        tokens: TokenSource = token_source_from_settings(settings)
        for warning in start_up_check(tokens):
            log.warning("%s", warning)
    except AuthError as e:
        return _refuse(str(e))
    if command == "check":
        from exporter.check import run_check  # only `check` needs it

        return run_check(settings, tokens=tokens)
    return _run(settings, tokens)


def _refuse(problems: str) -> int:
    """Bad configuration: one line per problem on stderr, exit status 2."""
    for line in problems.splitlines():
        print(f"slurm-exporter: {line}", file=sys.stderr)
    return 2


def _run(settings: Settings, tokens: TokenSource) -> int:
    if settings.once:
        return _once(settings, tokens)

    from exporter.server import make_app, serve
    from exporter.webconfig import WebConfig, WebConfigError, load_web_config, protect
    from exporter.worker import CollectionProcess

    web = WebConfig(path=Path())
    if settings.web_config_file is not None:
        try:
            web = load_web_config(settings.web_config_file)
        except WebConfigError as e:
            return _refuse(str(e))
    collection = CollectionProcess(settings)
    host, port = parse_listen_address(settings.listen_address)
    app = make_app(lambda: collection.snapshot, settings.telemetry_path, settings.slurmrestd_url)
    app = protect(app, web)
    try:
        httpd, _ = serve(host, port, app, web.tls, settings.web_max_connections)
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
        collection.run(stop)
    finally:
        httpd.shutdown()
    return 0


def _once(settings: Settings, tokens: TokenSource) -> int:
    from exporter.client import SlurmrestdClient
    from exporter.cycle import Collection, failure_lines

    # its failures are printed once, below, not logged as well
    client = SlurmrestdClient(settings, tokens)
    collection = Collection(settings, client, tokens, report_failures=False)
    try:
        snap = collection.run_once(wait_detached=True)
    finally:
        collection.close()
    sys.stdout.buffer.write(snap.exposition)
    sys.stdout.flush()
    for line in failure_lines(snap.failures):
        print(f"slurm-exporter: {line}", file=sys.stderr)
    return 0 if snap.all_up else 1

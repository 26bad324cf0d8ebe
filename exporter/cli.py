"""Command line: `slurm-exporter [flags]`, `slurm-exporter --once`, `slurm-exporter check`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.auth import (
    AuthError,
    TokenSource,
    auth_mode,
    start_up_check,
    token_source_from_settings,
)
from exporter.logs import setup_logging
from exporter.settings import (
    ConfigError,
    Settings,
    help_text,
    load_config,
    parse_listen_address,
)

if TYPE_CHECKING:
    from exporter.server import App
    from exporter.worker import CollectionProcess

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
        config = load_config(args)
    except ConfigError as e:
        return _refuse(str(e))
    settings = config.settings
    setup_logging(settings.log_level)
    if config.clusters:
        return _main_clusters(command, settings, config.clusters, config.cluster_where)
    # the same start-up checks in every mode: bad configuration stops here, exit 2
    try:
        tokens: TokenSource = token_source_from_settings(settings)
        for warning in start_up_check(tokens, config.where):
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

    from exporter.server import make_app
    from exporter.worker import CollectionProcess

    collection = CollectionProcess(settings)
    app = make_app(lambda: collection.snapshot, settings.telemetry_path, settings.slurmrestd_url)
    reading = (
        f"reading {settings.slurmrestd_url} every {settings.interval:g}s "
        f"(token {tokens.description})"
    )
    return _serve(settings, app, reading, [collection])


def _main_clusters(
    command: str, settings: Settings, clusters: dict[str, Settings],
    where: dict[str, dict[str, str]],
) -> int:
    """With clusters: the start-up checks of each one, then check (--target's, else every
    cluster in turn), --once (--target's) or the server (every cluster)."""
    chosen = {n: s for n, s in clusters.items() if settings.target in (None, n)}
    tokens, problems = {}, []
    for name, cluster in (clusters if command == "run" and not settings.once else chosen).items():
        try:
            if auth_mode(cluster) == "token":  # SLURM_JWT: one token for them all
                raise AuthError(
                    "$SLURM_JWT would be sent to every cluster: give each cluster its own "
                    "jwt_key_file or token_file"
                )
            tokens[name] = token_source_from_settings(cluster)
            for warning in start_up_check(tokens[name], where.get(name)):
                log.warning("cluster %s: %s", name, warning)
        except AuthError as e:
            # a setting of the cluster's own table names it; a default, not
            named = f"clusters.{name}." in str(e)
            problems.append(str(e) if named else f"cluster {name}: {e}")
    if problems:
        return _refuse("\n".join(problems))
    if command == "check":
        from exporter.check import run_check

        worst = 0
        for name, cluster in chosen.items():
            print(f"== cluster {name}", flush=True)
            worst = max(worst, run_check(cluster, tokens=tokens[name]))
        return worst
    if settings.once:  # load_config made sure that --target names one
        name = str(settings.target)
        return _once(clusters[name], tokens[name])
    return _serve_clusters(settings, clusters)


def _serve_clusters(settings: Settings, clusters: dict[str, Settings]) -> int:
    from exporter.server import make_app
    from exporter.worker import CollectionProcess, targets_health

    processes = {n: CollectionProcess(s, target=n) for n, s in clusters.items()}
    probes = {n: (lambda p=p: p.snapshot) for n, p in processes.items()}
    app = make_app(
        lambda: targets_health(processes), settings.telemetry_path, "", probes=probes
    )
    reading = f"and /probe?target=NAME for the clusters {', '.join(clusters)}"
    for name, cluster in clusters.items():
        log.info("cluster %s: reading %s every %gs", name, cluster.slurmrestd_url,
                 cluster.interval)
    return _serve(settings, app, reading, list(processes.values()))


def _serve(
    settings: Settings, app: App, reading: str, collections: list[CollectionProcess]
) -> int:
    """Serve `app` while each collection process runs (one thread each), until a signal."""
    from exporter.server import serve
    from exporter.webconfig import WebConfig, WebConfigError, load_web_config, protect

    web = WebConfig(path=Path())
    if settings.web_config_file is not None:
        try:
            web = load_web_config(settings.web_config_file)
        except WebConfigError as e:
            return _refuse(str(e))
    host, port = parse_listen_address(settings.listen_address)
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
        "serving %s://%s:%d%s%s, %s",
        web.scheme,
        host or "0.0.0.0",
        port,
        settings.telemetry_path,
        " with basic auth" if web.users else "",
        reading,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    others = [
        threading.Thread(target=c.run, args=(stop,), name=f"collection-{c.target}")
        for c in collections[1:]
    ]
    for thread in others:
        thread.start()
    try:
        collections[0].run(stop)
    finally:
        stop.set()
        for thread in others:
            thread.join()
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

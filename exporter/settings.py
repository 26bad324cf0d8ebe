"""Settings: command-line flags, SLURM_EXPORTER_* variables and an optional config file.

Precedence, highest first: flags, environment, config file, defaults. Every
setting is validated up front, so that bad configuration stops the exporter at
start (exit 2) with one line per problem naming where the bad value came from:
the flag, the variable, or the file and line. Faults that come later (slurmrestd
down, a key rotated or gone) are reported and survived by the cycle instead.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_PREFIX = "SLURM_EXPORTER_"
API_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
ENDPOINTS = (
    "diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses",
    "slurmdbd", "accounting",
)
# Endpoints polled less often than --interval unless --collector-X-interval says otherwise:
# one line per endpoint. /shares walks every association under slurmctld's association
# lock and fairshare moves slowly (PriorityCalcPeriod, 5 min by default). Reservations
# and licenses are small answers whose alerts want fresh data: every cycle.
DEFAULT_INTERVALS: dict[str, float] = {
    "shares": 300.0,
    # slurmdbd's statistics: its rollups run hourly, its RPC counters move slowly
    "slurmdbd": 60.0,
    # slurmdbd's job table, queried by time window: each poll costs slurmdbd a query
    "accounting": 300.0,
}

AuthMode = Literal["auto", "token", "token-file", "jwt-key", "scontrol", "none"]

# Bounds of the numeric settings. Below a millisecond a duration is a typo, not a
# setting; the upper bounds keep every wait a number the OS accepts (an infinite or
# 1e300 s wait raises OverflowError) and are far beyond any sensible value.
SECONDS_MIN = 0.001
INTERVAL_MAX = 86400.0  # a day
TIMEOUT_MAX = 3600.0
JWT_LIFESPAN_MIN = 5
STALE_DATA_MAX_AGE_MAX = 30 * 86400.0  # a month
# each open connection is a file descriptor: stay well below the usual limit of 1024
WEB_MAX_CONNECTIONS_MAX = 900
# Slurm's auth_p_token_generate() takes the lifespan as an int and refuses <= 0
# (src/plugins/auth/jwt/auth_jwt.c:752 in slurm-26-05-3-1)
JWT_LIFESPAN_MAX = 2**31 - 1
# the widest window asked of slurmdbd at once: a minute to a day (slurmdbd refuses wider
# than its MaxQueryTimeRange; a failed poll is caught up in chunks of this)
ACCOUNTING_MAX_WINDOW_MIN = 60.0
ACCOUNTING_MAX_WINDOW_MAX = 86400.0
# setting: (lowest, highest, unit)
BOUNDS: dict[str, tuple[float, float, str]] = {
    "interval": (SECONDS_MIN, INTERVAL_MAX, "seconds"),
    **{f"collector_{e}_interval": (SECONDS_MIN, INTERVAL_MAX, "seconds") for e in ENDPOINTS},
    "timeout": (SECONDS_MIN, TIMEOUT_MAX, "seconds"),
    "jwt_lifespan": (JWT_LIFESPAN_MIN, JWT_LIFESPAN_MAX, "seconds"),
    "stale_data_max_age": (0, STALE_DATA_MAX_AGE_MAX, "seconds"),
    "web_max_connections": (1, WEB_MAX_CONNECTIONS_MAX, "connections"),
    "accounting_max_window": (
        ACCOUNTING_MAX_WINDOW_MIN, ACCOUNTING_MAX_WINDOW_MAX, "seconds"
    ),
}


# --- many clusters: the `clusters` table of --config-file
# Settings of the whole exporter (its web server, its logs, its mode), not of one cluster:
# refused inside a cluster table.
GLOBAL_ONLY = frozenset({
    "listen_address", "telemetry_path", "web_max_connections", "web_config_file",
    "log_level", "config_file", "once", "target",
})
# Keys that would hold a secret in the file itself: a cluster's secrets come by file only
# (jwt_key_file, token_file), so that the config file can be readable by others.
INLINE_SECRETS = frozenset({"token", "jwt", "jwt_key", "slurm_jwt", "key", "password", "secret"})
# A cluster's name is the target= of /probe and a Prometheus label value.
CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


class ConfigError(Exception):
    """A setting is invalid; the message names it and says what is expected."""


class Settings(BaseModel):
    """Prometheus exporter for Slurm: reads slurmrestd, serves /metrics.

    Each flag --x-y is also the variable SLURM_EXPORTER_X_Y and the key x-y of --config-file.
    """

    model_config = ConfigDict(extra="forbid")

    # --- where slurmrestd is
    slurmrestd_url: str = Field(
        "http://localhost:6820",
        description="slurmrestd address: http://host:port, https://host:port "
        "or unix:///path/to/slurmrestd.socket",
    )
    api_version: str = Field(
        "auto",
        description="slurmrestd API version to use, e.g. v0.0.42; 'auto' picks the newest "
        "version that both slurmrestd and the exporter support",
    )
    timeout: float = Field(10.0, description="timeout of one request, in seconds")
    tls_ca_file: Path | None = Field(
        None, description="CA bundle to verify an https slurmrestd (unset: the system CAs)"
    )
    tls_insecure_skip_verify: bool = Field(
        False, description="do not verify the https certificate of slurmrestd (testing only)"
    )
    # --- Slurm's own metrics (slurm.conf MetricsType=metrics/openmetrics, 25.11+)
    native_metrics_url: str | None = Field(
        None,
        description="where slurmctld serves its own metrics, e.g. "
        "http://slurm-head:6817/metrics: `check` reads their names there to compare them "
        "with the exporter's (unset: the address slurm.conf gives, where slurmrestd shows "
        "slurm.conf, v0.0.45+)",
    )

    # --- authentication
    auth: AuthMode = Field(
        "auto",
        description="how to get a JWT: 'jwt-key' mints tokens with --jwt-key-file; "
        "'token-file' reads --token-file; 'token' uses $SLURM_JWT; 'scontrol' runs "
        "'scontrol token'; 'none' sends no token (UNIX socket with local auth); 'auto' "
        "picks the first one configured, in that order",
    )
    jwt_key_file: Path | None = Field(
        None, description="Slurm's HS256 key (AuthAltParameters=jwt_key=...) to mint tokens"
    )
    jwt_key_file_allow_insecure_permissions: bool = Field(
        False,
        description="use a --jwt-key-file that other users may read or write (refused "
        "otherwise: whoever reads the key can act as any Slurm user)",
    )
    jwt_user: str | None = Field(None, description="user name put in minted or scontrol tokens")
    jwt_lifespan: int = Field(
        1800, description="lifespan of minted or scontrol tokens, in seconds (>= 5)"
    )
    token_file: Path | None = Field(
        None, description="file holding a JWT (re-read when it changes), e.g. from a renewer"
    )
    user_name: str | None = Field(
        None,
        description="X-SLURM-USER-NAME to send with a static or file token (unset: the "
        "token's 'sun' claim)",
    )
    scontrol_path: str = Field("scontrol", description="scontrol binary for --auth scontrol")

    # --- what to collect
    collector_diag: bool = Field(True, description="scheduler statistics (sdiag)")
    collector_jobs: bool = Field(True, description="job counts, CPUs, memory, GPUs (squeue)")
    collector_nodes: bool = Field(True, description="node states, CPUs, memory, GPUs (sinfo)")
    collector_partitions: bool = Field(True, description="partition totals and state")
    collector_ping: bool = Field(True, description="slurmctld ping (scontrol ping)")
    collector_reservations: bool = Field(
        True, description="reservations and their nodes' states (scontrol show reservation)"
    )
    collector_licenses: bool = Field(True, description="licenses (scontrol show license)")
    collector_shares: bool = Field(
        True, description="fairshare per account (sshare), from Slurm 23.11 (API v0.0.40) on"
    )
    collector_slurmdbd: bool = Field(
        False,
        description="slurmdbd's own statistics (sacctmgr show stats: rollups, RPCs) from "
        "/slurmdb/vX/diag: needs slurmrestd's slurmdbd plugins and the exporter's user "
        "with AdminLevel=Administrator",
    )
    collector_accounting: bool = Field(
        False,
        description="job flows from slurmdbd (sacct): queue waits, how jobs end, run times, "
        "CPU/GPU/memory usage by account; needs slurmrestd's slurmdbd plugins and puts a "
        "query on slurmdbd every --collector-accounting-interval",
    )
    # --collector-X-interval, one per endpoint of ENDPOINTS, made here so that an endpoint
    # added there has its flag, variable and key (the class body's namespace is the
    # model's: pydantic sees these as declared fields; see interval_of)
    for _endpoint in ENDPOINTS:
        __annotations__[f"collector_{_endpoint}_interval"] = "float | None"
        vars()[f"collector_{_endpoint}_interval"] = Field(
            None,
            description=f"seconds between calls to /{_endpoint}, at least --interval (unset: "
            + (f"{DEFAULT_INTERVALS[_endpoint]:g}, or --interval if longer)"
               if _endpoint in DEFAULT_INTERVALS else "--interval)"),
        )
    del _endpoint
    jobs_per_user: bool = Field(True, description="job counts, CPUs, GPUs per user")
    jobs_per_account: bool = Field(True, description="job counts, CPUs, GPUs per account")
    nodes_per_node: bool = Field(False, description="series per node (one set per node)")
    nodes_unavailable_per_node: bool = Field(
        True,
        description="reason, setter and since-when of each node that sinfo -R lists (down, "
        "drained, draining, failing): as many series as such nodes; the count by reason "
        "stays",
    )
    shares_per_user: bool = Field(
        False,
        description="fairshare per user association too (one set per user and account: mind "
        "the cardinality and the size of /shares)",
    )
    accounting_per_account: bool = Field(
        False, description="accounting's queue waits, run times and ended jobs by account too"
    )
    accounting_per_user: bool = Field(
        False, description="accounting's CPU, GPU and memory usage by user too"
    )
    accounting_efficiency: bool = Field(
        False,
        description="CPU and memory efficiency of ended jobs (histograms by partition); "
        "asks slurmdbd for the job steps too: larger answers, a heavier query",
    )
    accounting_max_window: float = Field(
        3600.0,
        description="widest time window asked of slurmdbd at once, in seconds; a longer "
        "catch-up (after slurmdbd was down) is asked in chunks of this (keep it at most "
        "slurmdbd.conf's MaxQueryTimeRange)",
    )
    diag_rpc_per_user: bool = Field(
        True,
        description="sdiag's RPC counts and times per user (one series per user who sent "
        "an RPC since the last sdiag -r)",
    )
    slurmdbd_rpc_per_user: bool = Field(
        True,
        description="slurmdbd's RPC counts and times per user (one series per user who "
        "sent slurmdbd an RPC since its statistics started)",
    )

    # --- serving
    listen_address: str = Field(":9341", description="address:port to serve /metrics on")
    telemetry_path: str = Field("/metrics", description="path of the metrics page")
    web_max_connections: int = Field(
        256,
        description="connections /metrics keeps open at once; beyond, the oldest one that "
        "has not sent its request yet is dropped",
    )
    interval: float = Field(30.0, description="seconds between collection cycles")
    stale_data_max_age: float | None = Field(
        None,
        description="seconds a failing endpoint's last good metrics are still served, counted "
        "from its last success; then they are dropped until it answers again (unset: 5 x "
        "the endpoint's own interval, --collector-X-interval; 0: dropped at the first "
        "failure)",
    )
    once: bool = Field(
        False,
        description="run one collection cycle, print the metrics and exit (0 if every "
        "endpoint answered, 1 otherwise)",
    )
    web_config_file: Path | None = Field(
        None,
        description="TLS and basic auth for /metrics, in the web-config.yml format of the "
        "Prometheus exporter toolkit (tls_server_config, basic_auth_users with bcrypt hashes)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe log level written to stderr"
    )
    config_file: Path | None = Field(
        None,
        description="TOML, YAML (.yaml, .yml) or JSON (.json) file of settings (keys as "
        "the flags, without --), and optionally a clusters table: one exporter for many "
        "clusters, each served on /probe?target=NAME",
    )
    target: str | None = Field(
        None,
        description="with clusters in --config-file: the cluster that --once (required) "
        "and check (unset: every cluster in turn) read",
    )

    @field_validator("slurmrestd_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"no host in {v!r}; expected e.g. http://slurm-head:6820")
            _check_url_port(v)
            return v.rstrip("/")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"no socket path in {v!r}; expected unix:///path/to/socket")
            return v
        raise ValueError(
            f"unsupported scheme {parts.scheme or '(none)'!r} in {v!r}; "
            "use http://host:port, https://host:port or unix:///path/to/socket"
        )

    @field_validator("native_metrics_url")
    @classmethod
    def _check_native_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not http://host:port/metrics (slurmctld's port)")
        _check_url_port(v)
        return v.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _check_api_version(cls, v: str) -> str:
        if v != "auto" and not API_VERSION_RE.match(v):
            raise ValueError(f"{v!r} is not 'auto' nor a version like v0.0.42")
        return v

    @field_validator("listen_address")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        parse_listen_address(v)
        return v

    @field_validator(*BOUNDS)
    @classmethod
    def _check_bounds(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None:  # unset: its default is derived (--stale-data-max-age)
            return None
        low, high, unit = BOUNDS[str(info.field_name)]
        # written so that nan fails too (every comparison with nan is False)
        if not low <= v <= high:
            raise ValueError(f"must be from {low:g} to {high:.10g} {unit}")
        return v

    @field_validator("tls_ca_file")
    @classmethod
    def _check_ca_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            tls_context(v)
        return v

    @field_validator("telemetry_path")
    @classmethod
    def _check_path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with /")
        return v

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.jwt_key_file is None and self.auth in ("auto", "jwt-key"):
            # systemd's LoadCredential=jwt_key:/etc/slurm/jwt_hs256.key
            credential = credentials_directory_file(JWT_KEY_CREDENTIAL)
            if credential is not None:
                self.jwt_key_file = credential
        if self.auth == "jwt-key" and self.jwt_key_file is None:
            raise ValueError("--auth jwt-key needs --jwt-key-file")
        if self.auth == "token-file" and self.token_file is None:
            raise ValueError("--auth token-file needs --token-file")
        if self.jwt_key_file is not None and not self.jwt_user and self.auth in ("auto", "jwt-key"):
            raise ValueError("--jwt-key-file needs --jwt-user (the Slurm user to act as)")
        return self

    @model_validator(mode="after")
    def _check_endpoint_intervals(self) -> Settings:
        for endpoint in ENDPOINTS:
            own = getattr(self, f"collector_{endpoint}_interval")
            # an endpoint is called at most once a cycle: it cannot be polled more often
            if own is not None and own < self.interval:
                raise ValueError(
                    f"{flag_of(f'collector_{endpoint}_interval')}: must be at least "
                    f"--interval ({self.interval:g} s): an endpoint is called at most once "
                    f"a cycle (got {own:g})"
                )
        return self

    def interval_of(self, endpoint: str) -> float:
        """Seconds between calls to `endpoint`: its own flag, else its default, never
        less than --interval."""
        own = getattr(self, f"collector_{endpoint}_interval", None)
        if own is None:
            own = DEFAULT_INTERVALS.get(endpoint, self.interval)
        return max(own, self.interval)

    @property
    def unix_socket(self) -> str | None:
        """The socket path when slurmrestd is reached over a UNIX socket."""
        parts = urlsplit(self.slurmrestd_url)
        return parts.path if parts.scheme == "unix" else None

    def enabled_endpoints(self) -> tuple[str, ...]:
        return tuple(e for e in ENDPOINTS if getattr(self, f"collector_{e}"))


# The name of the key's credential in systemd's $CREDENTIALS_DIRECTORY (LoadCredential=).
JWT_KEY_CREDENTIAL = "jwt_key"


def credentials_directory_file(name: str) -> Path | None:
    """$CREDENTIALS_DIRECTORY/name when systemd passed that credential, else None."""
    import os

    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def parse_listen_address(value: str) -> tuple[str, int]:
    """':9341' -> ('', 9341); '127.0.0.1:9341'; '[::1]:9341' -> ('::1', 9341)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port, e.g. :9341 or 127.0.0.1:9341")
    return host.strip("[]"), int(port)


def _check_url_port(url: str) -> None:
    try:
        port = urlsplit(url).port  # raises ValueError when out of range or not a number
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"the port in {url!r} is not a number from 1 to 65535")


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """An SSL context trusting `ca_file`; ValueError (naming the file and the fix) if the
    file cannot be read or holds no certificate."""
    fix = (
        "give the PEM file of the CA that signed slurmrestd's certificate, or leave "
        "--tls-ca-file unset to use the system CAs"
    )
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except OSError as e:
        if isinstance(e, ssl.SSLError):
            raise ValueError(f"{ca_file} holds no PEM certificate ({e.reason}); {fix}") from None
        raise ValueError(f"cannot read {ca_file}: {e.strerror}; {fix}") from None


# --- where each value comes from: flags, variables, the config file ----------------


@dataclass(frozen=True, slots=True)
class _Value:
    value: Any
    where: str  # "--interval", "SLURM_EXPORTER_INTERVAL", "/etc/x.toml:3: interval"


def flag_of(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_of(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors print usage and exit
        m = re.match(r"argument (--[\w-]+)/(--no-[\w-]+): ignored explicit argument", message)
        if m:  # --once=yes
            message = f"{m[1]} takes no value: say {m[1]} or {m[2]}"
        raise ConfigError(message.removeprefix("argument "))


def _parser() -> _Parser:
    parser = _Parser(
        prog="slurm-exporter",
        description="Prometheus exporter for Slurm: reads slurmrestd, serves /metrics. Each "
        f"flag --x-y is also the variable {ENV_PREFIX}X_Y and the key x-y of --config-file.",
        allow_abbrev=False,  # --int must not silently mean --interval
        add_help=False,
    )
    parser.add_argument(
        "-h", "--help", action="store_true", default=argparse.SUPPRESS, help="show this help"
    )
    for name, info in Settings.model_fields.items():
        if info.annotation is bool:
            action: Any = argparse.BooleanOptionalAction
            parser.add_argument(
                flag_of(name),
                dest=name,
                action=action,
                default=argparse.SUPPRESS,
                help=info.description,
            )
        else:
            parser.add_argument(
                flag_of(name),
                dest=name,
                default=argparse.SUPPRESS,
                help=info.description,
                metavar=_metavar(name, info.annotation),
            )
    return parser


def _metavar(name: str, annotation: Any) -> str:
    text = str(annotation)
    if name == "web_max_connections":
        return "N"
    if "Literal" in text or name in ("auth", "log_level"):
        return "{" + ",".join(re.findall(r"'([^']+)'", text)) + "}"
    for kind, shown in (("Path", "PATH"), ("float", "SECONDS"), ("int", "SECONDS")):
        if kind in text:
            return shown
    return name.split("_")[-1].upper()


def help_text() -> str:
    return _parser().format_help()


def _from_flags(args: list[str]) -> dict[str, _Value]:
    parsed, rest = _parser().parse_known_args(args)
    if rest:
        flags = [flag_of(f) for f in Settings.model_fields] + [
            "--no-" + flag_of(f)[2:]
            for f, i in Settings.model_fields.items()
            if i.annotation is bool
        ]
        word = rest[0]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            raise ConfigError(f"unknown flag {name}{_did_you_mean(name, flags)}; see --help")
        raise ConfigError(
            f"unexpected argument {word!r}: flags take the form --name VALUE, and the only "
            "subcommand is check (slurm-exporter check --flags)"
        )
    return {k: _Value(v, flag_of(k)) for k, v in vars(parsed).items() if k != "help"}


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, _Value], list[str]]:
    known = {env_of(f): f for f in Settings.model_fields}
    values, problems = {}, []
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        if var not in known:
            problems.append(f"{var}: unknown variable{_did_you_mean(var, list(known))}")
        elif value != "":  # an empty variable (VAR= in an environment file) is unset
            values[known[var]] = _Value(value, var)
    return values, problems


def _parse_file(path: Path, text: str, duplicates: list[tuple[str, int | None]]) -> Any:
    """The file's data; keys set twice in one mapping go to `duplicates` (key, line)
    (TOML refuses them itself; YAML and JSON would silently keep the last)."""
    if path.suffix == ".json":
        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in items:
                if key in seen:
                    duplicates.append((key, None))
                seen[key] = value
            return seen

        return json.loads(text, object_pairs_hook=pairs)
    if path.suffix in (".yaml", ".yml"):
        import yaml  # only needed for YAML config files

        class Loader(yaml.SafeLoader):
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen = set()
                for key_node, _ in node.value:
                    key = str(key_node.value)
                    if key in seen:
                        duplicates.append((key, key_node.start_mark.line + 1))
                    seen.add(key)
                return super().construct_mapping(node, deep)

        return yaml.load(text, Loader=Loader) or {}  # a SafeLoader: no object tags
    return tomllib.loads(text)


def _file_kind(path: Path) -> str:
    if path.suffix == ".json":
        return "JSON"
    return "YAML" if path.suffix in (".yaml", ".yml") else "TOML"


def _line_of(text: str, key: str, start: int = 1) -> int | None:
    """The first line from `start` where `key` is set (TOML key =, YAML key:, JSON
    "key":, a TOML table [clusters.key]), for messages."""
    pattern = re.compile(
        rf"""(^|[\s{{,])["']?{re.escape(key)}["']?\s*[=:]|\.["']?{re.escape(key)}["']?\s*\]"""
    )
    for number, line in enumerate(text.splitlines(), 1):
        if number >= start and pattern.search(line):
            return number
    return None


@dataclass(frozen=True, slots=True)
class _File:
    values: dict[str, _Value]  # top-level settings
    problems: list[str]
    clusters: Any = None  # the `clusters` table as read, if any
    path: Path = Path()
    text: str = ""

    def at(self, key: str, start: int = 1) -> str:
        line = _line_of(self.text, key, start)
        return f"{self.path}:{line}" if line else str(self.path)


def _from_file(path: Path, where: str) -> _File:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        return _File({}, [f"{where}: cannot read {path}: {reason}"])
    kind = _file_kind(path)
    duplicates: list[tuple[str, int | None]] = []
    try:
        data = _parse_file(path, text, duplicates)
    except Exception as e:  # each parser raises its own error types
        detail = " ".join(str(e).split())
        return _File({}, [
            f"{path}: not valid {kind} ({detail}); config files are TOML, YAML (.yaml, .yml) "
            "or JSON (.json)"
        ])
    if not isinstance(data, dict):
        return _File({}, [
            f"{path}: expected a mapping of setting: value, got {type(data).__name__}"
        ])
    problems = [
        f"{path}:{line or _last_line_of(text, key)}: key '{key}' set twice"
        for key, line in duplicates
    ]
    read = _File({}, problems, data.get("clusters"), path, text)
    keys = [f.replace("_", "-") for f in Settings.model_fields]
    for key, value in data.items():
        at = read.at(str(key))
        field = str(key).replace("-", "_")  # both spellings: slurmrestd-url, slurmrestd_url
        if field == "clusters":
            continue
        if field not in Settings.model_fields:
            suggestion = _did_you_mean(str(key).replace("_", "-"), keys)
            if isinstance(value, dict) and not suggestion:
                suggestion = " (settings are top-level keys, not sections)"
            problems.append(f"{at}: unknown key '{key}'{suggestion}")
        else:
            read.values[field] = _Value(value, f"{at}: {key}")
    return read


def _last_line_of(text: str, key: str) -> int:
    """The line of the last place `key` is set (the second of a duplicate)."""
    line, found = 1, 0
    while (at := _line_of(text, key, line)) is not None:
        found, line = at, at + 1
    return found


_TYPE_MESSAGES = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "path_type": "expected a path",
}


def _describe_error(e: Mapping[str, Any], sources: Mapping[str, _Value]) -> str:
    loc = [str(p) for p in e["loc"]]
    msg = str(e["msg"]).removeprefix("Value error, ")
    if not loc:
        # a rule across settings names the flag it is about: say where its value came from
        m = re.match(r"(--[\w-]+): ", msg)
        source = sources.get(m[1][2:].replace("-", "_")) if m else None
        if m and source is not None:
            return f"{source.where}: {msg[m.end():]}"
        return msg
    kind = str(e["type"])
    if kind == "literal_error":
        msg = f"expected one of {e['ctx']['expected']}"
    msg = _TYPE_MESSAGES.get(kind, msg)
    source = sources.get(loc[0])
    where = source.where if source else f"{flag_of(loc[0])} (default)"
    got = source.value if source else e.get("input")
    shown = f" (got {got!r})"
    if isinstance(got, dict) or got is None or _quotes(msg, str(got)):
        shown = ""
    return f"{where}: {msg}{shown}"


def _quotes(message: str, value: str) -> bool:
    """Whether the message already shows the value (as a whole word)."""
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", message) is not None


def describe_validation_error(err: ValidationError, sources: Mapping[str, _Value]) -> str:
    """One line per bad setting, naming where its value came from."""
    return "\n".join(_describe_error(e, sources) for e in err.errors())


def load_settings(args: list[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Parse flags, the environment and --config-file; raise ConfigError (every problem,
    one line each) when anything is invalid. The settings of the exporter itself (of its
    one cluster when the file names no clusters): see load_config for the clusters."""
    return load_config(args, environ).settings


@dataclass(frozen=True, slots=True)
class Config:
    """The exporter's settings and, when --config-file has a clusters table, the settings
    of each cluster (top-level keys, variables and flags as defaults, the cluster's own
    keys over them)."""

    settings: Settings
    clusters: dict[str, Settings]
    # where each setting was given ("--jwt-key-file", "SLURM_EXPORTER_...", "FILE:LINE: key"),
    # for the files read at start (auth.start_up_check); of the exporter, then per cluster
    where: dict[str, str] = field(default_factory=dict)
    cluster_where: dict[str, dict[str, str]] = field(default_factory=dict)


def load_config(args: list[str], environ: Mapping[str, str] | None = None) -> Config:
    """load_settings, with the clusters of --config-file, each validated as the settings
    of a one-cluster exporter are."""
    env = os.environ if environ is None else environ
    flags = _from_flags(args)
    variables, problems = _from_env(env)
    read = _File({}, [])
    config = flags.get("config_file") or variables.get("config_file")
    if config is not None:
        read = _from_file(Path(str(config.value)), config.where)
        problems += read.problems
    sources = {**read.values, **variables, **flags}
    settings = None
    try:
        settings = Settings.model_validate({k: v.value for k, v in sources.items()})
    except ValidationError as e:
        problems.append(describe_validation_error(e, sources))
    clusters: dict[str, Settings] = {}
    cluster_where: dict[str, dict[str, str]] = {}
    if read.clusters is not None:
        clusters = _clusters(read, sources, problems, cluster_where)
    if settings is not None:
        problems += _check_target(settings, clusters, sources)
    if problems or settings is None:
        raise ConfigError("\n".join(problems))
    return Config(settings, clusters, _where(sources), cluster_where)


def _where(sources: Mapping[str, _Value]) -> dict[str, str]:
    return {k: v.where for k, v in sources.items()}


def _clusters(
    read: _File, defaults: Mapping[str, _Value], problems: list[str],
    where: dict[str, dict[str, str]],
) -> dict[str, Settings]:
    at = read.at("clusters")
    if not isinstance(read.clusters, dict) or not read.clusters:
        problems.append(f"{at}: clusters: expected a table of NAME: {{settings}}")
        return {}
    start = _line_of(read.text, "clusters") or 1
    out = {}
    for name, table in read.clusters.items():
        cluster = _cluster(read, str(name), table, defaults, start, problems, where)
        if cluster is not None:
            out[str(name)] = cluster
    return out


def _cluster(
    read: _File, name: str, table: Any, defaults: Mapping[str, _Value], start: int,
    problems: list[str], where: dict[str, dict[str, str]],
) -> Settings | None:
    """One cluster's settings, or None with its problems added to `problems`; where
    each of its settings came from in `where[name]`."""
    start = _line_of(read.text, name, start) or start
    before = len(problems)
    # "." and "..": a name is also a folder (the Helm chart mounts each cluster's key there)
    if not CLUSTER_NAME_RE.fullmatch(name) or name in (".", ".."):
        problems.append(
            f"{read.at(name, start)}: cluster name {name!r}: use only letters, digits, "
            "'_', '.' and '-', not '.' or '..' alone (it is the target= of /probe)"
        )
    if not isinstance(table, dict):
        problems.append(f"{read.at(name, start)}: clusters.{name}: expected a table of settings")
        return None
    own: dict[str, _Value] = {}
    keys = [f.replace("_", "-") for f in Settings.model_fields if f not in GLOBAL_ONLY]
    for key, value in table.items():
        at, field = read.at(str(key), start), str(key).replace("-", "_")
        what = f"{at}: clusters.{name}.{key}"
        if field in INLINE_SECRETS:
            problems.append(
                f"{what}: no secret in the config file: put it in a file only the "
                "exporter can read and give its path as jwt_key_file or token_file"
            )
        elif field in GLOBAL_ONLY:
            problems.append(
                f"{what}: a setting of the whole exporter, not of one cluster: set it at "
                "the top level"
            )
        elif field not in Settings.model_fields:
            problems.append(
                f"{what}: unknown key{_did_you_mean(str(key).replace('_', '-'), keys)}"
            )
        elif field in own:
            problems.append(f"{what}: set twice (as {own[field].where.rsplit('.', 1)[-1]})")
        else:
            own[field] = _Value(value, what)
    sources = {**defaults, **own}  # the keys refused above aside: every problem at once
    where[name] = _where(sources)
    try:
        settings = Settings.model_validate({k: v.value for k, v in sources.items()})
        return settings if len(problems) == before else None
    except ValidationError as e:
        for line in describe_validation_error(e, sources).splitlines():
            # a problem with a default: say which cluster it breaks
            named = f"clusters.{name}." in line
            problems.append(line if named else f"{read.at(name, start)}: cluster {name}: {line}")
        return None


def _check_target(
    settings: Settings, clusters: Mapping[str, Settings], sources: Mapping[str, _Value]
) -> list[str]:
    where = sources["target"].where if "target" in sources else "--target"
    known = ", ".join(clusters) or "none"
    if settings.target is not None and not clusters:
        return [
            f"{where}: names a cluster of the clusters table of --config-file, and there is "
            "none (README: Many clusters); without clusters, leave --target unset"
        ]
    if settings.target is not None and settings.target not in clusters:
        return [f"{where}: no cluster {settings.target!r} in --config-file (clusters: {known})"]
    if clusters and settings.once and settings.target is None:
        return [f"--once: with clusters, name the one to read with --target (clusters: {known})"]
    return []

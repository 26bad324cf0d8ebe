"""Settings: command-line flags, SLURM_EXPORTER_* variables and an optional config file.

Precedence, highest first: flags, environment, config file, defaults. Every
setting is validated up front so that a bad value stops the exporter at start
with a message naming the flag and the variable, never later in a cycle.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "SLURM_EXPORTER_"
API_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping")

AuthMode = Literal["auto", "token", "token-file", "jwt-key", "scontrol", "none"]


class ConfigError(Exception):
    """A setting is invalid; the message names it and says what is expected."""


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from a TOML or YAML file given by --config-file (lowest but defaults)."""

    path: ClassVar[Path | None] = None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns everything at once

    def __call__(self) -> dict[str, Any]:
        path = type(self).path
        if path is None:
            return {}
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"--config-file {path}: cannot read it: {e.strerror}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml  # only needed for YAML config files

                data = yaml.safe_load(text) or {}
            else:
                data = tomllib.loads(text)
        except Exception as e:  # both parsers raise their own error types
            raise ConfigError(f"--config-file {path}: not valid {path.suffix[1:]}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config-file {path}: expected a mapping of setting: value")
        # accept both spellings: slurmrestd-url and slurmrestd_url
        return {str(k).replace("-", "_"): v for k, v in data.items()}


class Settings(BaseSettings):
    """Prometheus exporter for Slurm: reads slurmrestd, serves /metrics.

    Each flag --x-y is also the variable SLURM_EXPORTER_X_Y and the key x-y of --config-file.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="slurm-exporter",
        cli_avoid_json=True,
        cli_hide_none_type=True,
        extra="forbid",
    )

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
    timeout: float = Field(10.0, gt=0, description="timeout of one request, in seconds")
    tls_ca_file: Path | None = Field(
        None, description="CA bundle to verify an https slurmrestd (unset: the system CAs)"
    )
    tls_insecure_skip_verify: bool = Field(
        False, description="do not verify the https certificate of slurmrestd (testing only)"
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
        1800, ge=5, description="lifespan of minted or scontrol tokens, in seconds (>= 5)"
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
    jobs_per_user: bool = Field(True, description="job counts, CPUs, GPUs per user")
    jobs_per_account: bool = Field(True, description="job counts, CPUs, GPUs per account")
    nodes_per_node: bool = Field(False, description="series per node (one set per node)")

    # --- serving
    listen_address: str = Field(":9341", description="address:port to serve /metrics on")
    telemetry_path: str = Field("/metrics", description="path of the metrics page")
    web_max_connections: int = Field(
        256,
        ge=1,
        description="connections /metrics keeps open at once; beyond, the oldest one that "
        "has not sent its request yet is dropped",
    )
    interval: float = Field(30.0, gt=0, description="seconds between collection cycles")
    stale_data_max_age: float | None = Field(
        None,
        ge=0,
        description="seconds a failing endpoint's last good metrics are still served, counted "
        "from its last success; then they are dropped until it answers again (unset: 5 x "
        "--interval; 0: dropped at the first failure)",
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
        None, description="TOML or YAML file of settings (keys as the flags, without --)"
    )

    @field_validator("slurmrestd_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"no host in {v!r}; expected e.g. http://slurm-head:6820")
            return v.rstrip("/")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"no socket path in {v!r}; expected unix:///path/to/socket")
            return v
        raise ValueError(
            f"unsupported scheme {parts.scheme or '(none)'!r} in {v!r}; "
            "use http://host:port, https://host:port or unix:///path/to/socket"
        )

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

    @property
    def unix_socket(self) -> str | None:
        """The socket path when slurmrestd is reached over a UNIX socket."""
        parts = urlsplit(self.slurmrestd_url)
        return parts.path if parts.scheme == "unix" else None

    def enabled_endpoints(self) -> tuple[str, ...]:
        return tuple(e for e in ENDPOINTS if getattr(self, f"collector_{e}"))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))


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


def _flag_and_env(field: str) -> str:
    return f"--{field.replace('_', '-')} / {ENV_PREFIX}{field.upper()}"


def describe_validation_error(err: ValidationError) -> str:
    """One line per bad setting, naming the flag and the variable."""
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        msg = str(e["msg"]).removeprefix("Value error, ")
        if loc:
            got = e.get("input")
            shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
            lines.append(f"invalid setting {_flag_and_env(loc[0])}: {msg}{shown}")
        else:
            lines.append(f"invalid settings: {msg}")
    return "\n".join(lines)


def load_settings(args: list[str]) -> Settings:
    """Parse flags (and the environment, and --config-file); raise ConfigError when invalid."""
    from pydantic_settings import CliApp

    _ConfigFileSource.path = _find_config_file(args)
    try:
        return CliApp.run(Settings, cli_args=args)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None


def _find_config_file(args: list[str]) -> Path | None:
    import os

    for i, a in enumerate(args):
        if a == "--config-file" and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--config-file="):
            return Path(a.split("=", 1)[1])
    env = os.environ.get(ENV_PREFIX + "CONFIG_FILE")
    return Path(env) if env else None

"""slurm.conf as slurmrestd shows it (GET /slurm/vX/conf, API v0.0.45 onwards): only
what `check` reads of it."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from exporter.api.decoding import Envelope, decode
from exporter.api.versions import parse_version

_FIRST_WITH_CONF = (0, 0, 45)


class _Controller(msgspec.Struct):
    address: str | None = None
    machine: str | None = None


class _SlurmConf(msgspec.Struct):
    # ["jobs", "nodes"] (v0.0.45's schema); a "jobs,nodes" string is read alike
    PrivateData: list[str] | str | None = None
    # slurmctld's own metrics (src/plugins/data_parser/v0.0.45/parsers.c:12486-12489,
    # 12397, 12405, 12578 at slurm-26-05-3-1)
    MetricsType: str | None = None
    MetricsAuthUsers: list[str] | str | None = None
    MetricsParameters: list[str] | str | None = None
    CommunicationParameters: list[str] | str | None = None
    SlurmctldPort: int | None = None
    controllers: list[_Controller] | None = None


class _ConfBody(Envelope, kw_only=True):
    slurm_conf: _SlurmConf | None = None


_conf_decoder = msgspec.json.Decoder(_ConfBody)


def conf_path(version: str) -> str | None:
    """The path of slurm.conf's dump in this API version; None before v0.0.45."""
    parsed = parse_version(version)
    return f"/slurm/{version}/conf" if parsed and parsed >= _FIRST_WITH_CONF else None


def _words(value: list[str] | str | None) -> frozenset[str]:
    words = value.split(",") if isinstance(value, str) else value or []
    return frozenset(w.strip().lower() for w in words if w.strip())


def private_data(body: bytes) -> frozenset[str]:
    """PrivateData of a /conf answer, lower case (jobs, nodes, partitions, usage, ...)."""
    conf = decode(_conf_decoder, body, "/conf").slurm_conf
    return _words(conf.PrivateData if conf else None)


@dataclass(frozen=True, slots=True)
class MetricsConf:
    """What slurm.conf says of slurmctld's own metrics (MetricsType, 25.11+)."""

    metrics_type: str  # "" when unset: slurmctld's /metrics/* answer empty pages
    http_disabled: bool  # CommunicationParameters=disable_http: no HTTP on slurmctld's port
    # a JWT is needed: MetricsAuthUsers set, or PrivateData without
    # MetricsParameters=ignore_private_data (src/common/read_config.c:4280-4282 and
    # 4880-4898, src/slurmctld/http.c _check_metrics_authorized, slurm-26-05-3-1)
    needs_token: bool
    url: str | None  # http://FIRST_CONTROLLER:SlurmctldPort/metrics


def metrics_conf(body: bytes) -> MetricsConf:
    conf = decode(_conf_decoder, body, "/conf").slurm_conf or _SlurmConf()
    first = (conf.controllers or [_Controller()])[0]
    host = first.address or first.machine
    if host and ":" in host:  # an IPv6 literal (http.c _primary_slurmctld_url does alike)
        host = f"[{host}]"
    url = f"http://{host}:{conf.SlurmctldPort}/metrics" if host and conf.SlurmctldPort else None
    private = bool(_words(conf.PrivateData) - {"none"})
    open_anyway = "ignore_private_data" in _words(conf.MetricsParameters)
    return MetricsConf(
        metrics_type=conf.MetricsType or "",
        http_disabled="disable_http" in _words(conf.CommunicationParameters),
        needs_token=bool(_words(conf.MetricsAuthUsers)) or (private and not open_anyway),
        url=url,
    )

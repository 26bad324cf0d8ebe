"""slurm.conf as slurmrestd shows it (GET /slurm/vX/conf, API v0.0.45 onwards): only
what `check` reads of it."""

from __future__ import annotations

import msgspec

from exporter.api.decoding import Envelope, decode
from exporter.api.versions import parse_version

_FIRST_WITH_CONF = (0, 0, 45)


class _SlurmConf(msgspec.Struct):
    # ["jobs", "nodes"] (v0.0.45's schema); a "jobs,nodes" string is read alike
    PrivateData: list[str] | str | None = None


class _ConfBody(Envelope, kw_only=True):
    slurm_conf: _SlurmConf | None = None


_conf_decoder = msgspec.json.Decoder(_ConfBody)


def conf_path(version: str) -> str | None:
    """The path of slurm.conf's dump in this API version; None before v0.0.45."""
    parsed = parse_version(version)
    return f"/slurm/{version}/conf" if parsed and parsed >= _FIRST_WITH_CONF else None


def private_data(body: bytes) -> frozenset[str]:
    """PrivateData of a /conf answer, lower case (jobs, nodes, partitions, usage, ...)."""
    conf = decode(_conf_decoder, body, "/conf").slurm_conf
    value = conf.PrivateData if conf else None
    words = value.split(",") if isinstance(value, str) else value or []
    return frozenset(w.strip().lower() for w in words if w.strip())

"""API version discovery: which /slurm/vX versions slurmrestd serves, and which to use."""

from __future__ import annotations

import re

import msgspec

from exporter.api.errors import DecodeError
from exporter.api.versions import newest_supported

_SLURM_PATH = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/")
OPENAPI_PATH = "/openapi/v3"


class _OpenAPI(msgspec.Struct):
    # only the path names matter; their (large) bodies are skipped undecoded
    paths: dict[str, msgspec.Raw] = {}


_decoder = msgspec.json.Decoder(_OpenAPI)


def served_versions(openapi_body: bytes) -> list[str]:
    """The /slurm API versions listed in an /openapi/v3 document, oldest first."""
    try:
        doc = _decoder.decode(openapi_body)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DecodeError(f"{OPENAPI_PATH} is not an OpenAPI document: {e}") from None
    found = {m.group(1) for p in doc.paths if (m := _SLURM_PATH.match(p))}
    return sorted(found, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.lstrip("v").split("."))


def choose_version(served: list[str]) -> str | None:
    """The newest version both sides support; else the closest unknown newer one."""
    return newest_supported(served)

"""API version discovery: which /slurm/vX versions slurmrestd serves, and which to use.

`discover` is the one copy of it, for the collection cycle and for `check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import msgspec

from exporter.api.errors import DecodeError
from exporter.api.versions import SUPPORTED_VERSIONS, newest_supported
from exporter.errors import EndpointFailure

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


class _Answer(Protocol):
    @property
    def body(self) -> bytes: ...

    @property
    def seconds(self) -> float: ...


class _Getter(Protocol):
    def get(self, path: str) -> _Answer: ...


@dataclass(frozen=True, slots=True)
class Discovery:
    served: list[str]  # oldest first
    chosen: str | None  # None: none of them is one this exporter speaks
    seconds: float  # how long /openapi/v3 took

    def require(self) -> str:
        """The version to use; EndpointFailure (not_found) when there is none."""
        if self.chosen is None:
            raise EndpointFailure(
                "not_found",
                f"slurmrestd serves API versions {', '.join(self.served) or '(none)'}, none "
                f"of which this exporter supports ({', '.join(SUPPORTED_VERSIONS)}); "
                "upgrade the exporter or Slurm",
            )
        return self.chosen


def discover(client: _Getter) -> Discovery:
    """Ask slurmrestd (a SlurmrestdClient) which versions it serves and pick one.

    Raises EndpointFailure: the client's own (connect, timeout, auth...), or decode when
    the answer is not an OpenAPI document.
    """
    answer = client.get(OPENAPI_PATH)
    try:
        served = served_versions(answer.body)
    except DecodeError as e:
        raise EndpointFailure(
            "decode", f"GET {OPENAPI_PATH}: {e}; is this URL really slurmrestd?"
        ) from None
    return Discovery(served, choose_version(served), answer.seconds)

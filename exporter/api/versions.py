"""Which API versions we speak, and the adapter for each.

Two generations: v0.0.36-v0.0.38 (Slurm 22.05, also served by 23.02) and
v0.0.40 onwards (data_parser, Slurm 23.11+). v0.0.39 (23.02's first
data_parser) is not supported: 23.02 also serves v0.0.38, which is picked
instead. Versions newer than the newest we know are spoken by the newest
adapter, since slurmrestd keeps the fields we read stable across data_parser
versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from exporter.api.adapter import Adapter
from exporter.api.errors import UnsupportedVersionError
from exporter.api.v0036 import VERSIONS as V0036_VERSIONS
from exporter.api.v0036 import V0036Adapter
from exporter.api.v0040 import V0040Adapter

SUPPORTED_VERSIONS: tuple[str, ...] = (
    *V0036_VERSIONS,
    "v0.0.40",
    "v0.0.41",
    "v0.0.42",
    "v0.0.43",
    "v0.0.44",
    "v0.0.45",
)

_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_NEWEST = (0, 0, 45)


def parse_version(version: str) -> tuple[int, int, int] | None:
    """(0, 0, 45) for "v0.0.45"; None when the string is not such a version."""
    match = _VERSION.match(version.strip())
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _is_usable(version: str) -> bool:
    parsed = parse_version(version)
    return parsed is not None and (version.strip() in SUPPORTED_VERSIONS or parsed > _NEWEST)


@cache
def adapter_for(version: str) -> Adapter:
    """The adapter for an API version; UnsupportedVersionError if there is none."""
    version = version.strip()
    parsed = parse_version(version)
    if parsed is None:
        raise UnsupportedVersionError(f"not an API version: {version!r}")
    if version in V0036_VERSIONS:
        return V0036Adapter(version)
    if version in SUPPORTED_VERSIONS or parsed > _NEWEST:
        return V0040Adapter(version)
    raise UnsupportedVersionError(
        f"API version {version} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)}"
        f" and newer than {SUPPORTED_VERSIONS[-1]})"
    )


def newest_supported(served: Iterable[str]) -> str | None:
    """The version to use among those slurmrestd serves, or None if none will do.

    Prefers the newest version we know; only when none is served does it pick
    the oldest of the unknown newer ones (the closest to what we know).
    """
    usable = [v.strip() for v in served if _is_usable(v)]
    known = [v for v in usable if v in SUPPORTED_VERSIONS]
    if known:
        return max(known, key=_sort_key)
    if usable:
        return min(usable, key=_sort_key)
    return None


def _sort_key(version: str) -> tuple[int, int, int]:
    parsed = parse_version(version)
    assert parsed is not None  # only called on parsed versions
    return parsed


# --- what a release's slurmrestd gets wrong -------------------------------------------
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")
# slurmrestd 23.11 to 26.05.2 pass /nodes' update_time on to slurm_load_partitions() as
# well (src/slurmrestd/plugins/openapi/slurmctld/nodes.c, _dump_nodes(): line 137 at tags
# slurm-23-11-0-1 .. slurm-26-05-2-1; 22.05 and 23.02 likewise, v0.0.38/nodes.c:270).
# When nodes changed but partitions did not, that call answers SLURM_NO_CHANGE_IN_DATA and
# slurmrestd answers HTTP 500 "Unable to query partitions" (error -1). Fixed in 26.05.3
# (commit ef88eadf88, "Fix HTTP 500 from get_nodes when update_time is passed": partitions
# loaded with update_time=0, an unchanged node list answered 304); not in 25.05 or 25.11.
_NODES_UPDATE_TIME_FIXED_IN = (26, 5, 3)


def update_time_usable(endpoint: str, release: str) -> bool:
    """Whether `?update_time=` on this endpoint gets a right answer from this Slurm
    release (meta.slurm.release, e.g. "24.11.5"); an unknown release: assume not."""
    if endpoint != "nodes":
        return True
    match = _RELEASE.match(release.strip())
    if not match:
        return False
    return tuple(int(x) for x in match.groups()) >= _NODES_UPDATE_TIME_FIXED_IN

"""License metrics: what `scontrol show license` says of each license."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import Metric

from exporter.api.model import License
from exporter.collectors.families import Key, gauge

# nodes: "" for an ordinary license; from 25.11 a hierarchical resource is several
# licenses sharing a LicenseName, one per layer, told apart by Nodes (26.05
# src/slurmctld/licenses.c:837 refuses a duplicate layer), and scontrol prints each
# (src/scontrol/info_lics.c:152-165 at slurm-25-11-0-1)
_LICENSE = ("license", "nodes")


def collect_licenses(licenses: Sequence[License]) -> list[Metric]:
    """Total, used, free and reserved per license; for remote licenses (slurmdbd's, where
    the API version has them: v0.0.40+) what the license manager last said, which
    scontrol shows only for those (src/scontrol/info_lics.c:163 at slurm-24-11-5-1)."""
    by_key: dict[Key, License] = {}
    for lic in licenses:
        by_key.setdefault((lic.name, lic.nodes), lic)
    values: dict[str, dict[Key, float]] = {k: {} for k in _FAMILIES}
    for key, lic in by_key.items():
        values["configured"][key] = lic.total
        values["used"][key] = lic.used
        values["free"][key] = lic.free
        values["reserved"][key] = lic.reserved
        values["remote"][key] = int(lic.remote)
        if not lic.remote:
            continue
        if lic.last_consumed is not None:
            values["last_consumed"][key] = lic.last_consumed
        if lic.last_deficit is not None:
            values["last_deficit"][key] = lic.last_deficit
        if lic.last_update is not None:
            values["last_update_timestamp_seconds"][key] = lic.last_update
    return [
        gauge(f"slurm_license_{suffix}", doc, _LICENSE, values[suffix])
        for suffix, doc in _FAMILIES.items()
    ]


_FAMILIES = {
    "configured": "The license's Total: licenses configured (slurm.conf Licenses=, or "
    "slurmdbd's share of a remote license); +Inf when INFINITE. nodes: a hierarchical "
    "resource's layer (Nodes, 25.11+), \"\" for an ordinary license.",
    "used": "The license's Used: licenses held by jobs now.",
    # Free = Total - Used - LastDeficit, Reserved not taken off (slurm_protocol_pack.c
    # _unpack_license_info_msg, 24.11); a job outside the reservations is refused beyond
    # used + deficit + reserved (src/slurmctld/licenses.c:712-713 at slurm-24-11-5-1)
    "free": "The license's Free: Total - Used - LastDeficit, licenses held by "
    "reservations included; jobs outside reservations can take free - reserved; +Inf when "
    "Total is INFINITE.",
    "reserved": "The license's Reserved: licenses held by reservations.",
    "remote": "1 when the license is remote (served by slurmdbd, sacctmgr add resource), "
    "0 when slurm.conf configures it.",
    "last_consumed": "Remote licenses: the license manager's last count of licenses "
    "consumed (LastConsumed); absent for local ones and before v0.0.40.",
    "last_deficit": "Remote licenses: licenses missing from the cluster's point of view "
    "(LastDeficit); absent for local ones and before v0.0.40.",
    "last_update_timestamp_seconds": "Remote licenses: when the license manager's counts "
    "were last updated (LastUpdate), as a Unix timestamp; absent for local ones, when "
    "never updated and before v0.0.40.",
}

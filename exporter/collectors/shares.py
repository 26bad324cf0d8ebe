"""Fairshare metrics: what `sshare -a -l` says of each account (and, behind --shares-per-
user, of each user in each account). Every value is slurmctld's own, copied from the
association by assoc_mgr_get_shares (src/common/assoc_mgr.c:3369 in slurm-24-11-5-1),
the numbers sshare prints from the same RPC (src/sshare/process.c): RawShares (the
root's NO_VAL and a user's "parent" are left out, sshare prints a blank and "parent"),
NormShares, RawUsage (decayed TRES-billing-seconds, cut to an integer by slurmctld),
NormUsage, EffectvUsage, LevelFS (+Inf for shares and no usage, sshare's "inf"; none for
Fairshare=parent) and, for users only, FairShare: with the default
PriorityFlags=FAIR_TREE sshare prints no factor for accounts (process.c PRINT_FSFACTOR),
and slurmctld's is 0 there. Under NO_FAIR_TREE slurmctld sends 0 for every factor and
LevelFS (see _fair_tree), and sshare computes its own factor from
FairShareDampeningFactor, which /shares does not carry: both are left out then.
TRESRunMins is exported in seconds as slurmctld keeps it (grp_used_tres_run_secs; sshare
divides by 60 and drops the remainder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from prometheus_client.metrics_core import Metric

from exporter.api.model import Share
from exporter.collectors.families import Key, gauge

# (name suffix, help, value); None: no sample
_VALUES: tuple[tuple[str, str, Callable[[Share], float | None]], ...] = (
    ("shares", "RawShares: fairshare shares granted to the association (sshare -l); "
     "absent for the root and for Fairshare=parent.", lambda s: s.shares_raw),
    ("shares_normalized", "NormShares: the association's shares over its siblings' sum, "
     "from 0 to 1.", lambda s: s.shares_norm),
    ("usage_billing_seconds", "RawUsage: decayed usage, in TRES-billing-seconds "
     "(PriorityDecayHalfLife).", lambda s: s.usage_raw),
    ("usage_normalized", "NormUsage: the association's raw usage over the cluster's, "
     "from 0 to 1; absent where slurmctld has none.", lambda s: s.usage_norm),
    ("usage_effective", "EffectvUsage: usage over its siblings' (Fair Tree), from 0 to 1.",
     lambda s: s.usage_effective),
    ("level", "LevelFS: NormShares / EffectvUsage; above 1 the association has used less "
     "than its share; +Inf with shares and no usage; absent for Fairshare=parent and "
     "under PriorityFlags=NO_FAIR_TREE.",
     lambda s: s.level_fs),
)


# TRES that no job holds while it runs: their run seconds are always 0 (each would be
# one more series per association)
_NOT_RUN = frozenset({"energy", "fs/disk", "vmem", "pages"})


def collect_shares(shares: Sequence[Share], per_user: bool) -> list[Metric]:
    if not _fair_tree(shares):
        shares = [replace(s, fairshare_factor=None, level_fs=None) for s in shares]
    accounts = [s for s in shares if not s.user]
    families = _families("account", ["account"], accounts, lambda s: (s.name,))
    if per_user:
        users = [s for s in shares if s.user]
        key: Callable[[Share], Key] = lambda s: (s.name, s.parent, s.partition)  # noqa: E731
        families += _families("user", ["user", "account", "partition"], users, key)
        factor = {key(s): s.fairshare_factor for s in users if s.fairshare_factor is not None}
        families.append(gauge(
            "slurm_user_fairshare_factor",
            "FairShare: the user association's fairshare factor, from 0 to 1, as sshare "
            "prints it (the priority's fairshare component before PriorityWeightFairshare); "
            "Fair Tree only: absent under PriorityFlags=NO_FAIR_TREE.",
            ["user", "account", "partition"],
            factor,
        ))
    return families


def _fair_tree(shares: Sequence[Share]) -> bool:
    """Whether slurmctld ran Fair Tree: only fair_tree.c sets fs_factor and level_fs
    (src/plugins/priority/multifactor/fair_tree.c:205,372, slurm-24-11-5-1), and its
    top-ranked user gets rank / g_user_assoc_count with rank starting at the count
    (:405), i.e. 1. Without it (NO_FAIR_TREE, or before its first run) all are 0
    (slurmdb_defs.c:643-644), which sshare never prints."""
    return any(s.user and (s.fairshare_factor or 0.0) > 0.0 for s in shares)


def _families(
    kind: str, labels: list[str], shares: Sequence[Share], key: Callable[[Share], Key]
) -> list[Metric]:
    families: list[Metric] = []
    for suffix, doc, value in _VALUES:
        values: dict[Key, float] = {}
        for s in shares:
            v = value(s)
            if v is not None:
                values.setdefault(key(s), float(v))
        families.append(gauge(f"slurm_{kind}_fairshare_{suffix}", f"sshare: {doc}", labels,
                              values))
    run: dict[Key, float] = {}
    for s in shares:
        for tres, seconds in s.tres_run_seconds:
            if tres not in _NOT_RUN:
                run.setdefault((*key(s), tres), float(seconds))
    families.append(gauge(
        f"slurm_{kind}_fairshare_tres_run_seconds",
        "sshare: TRESRunMins x 60: TRES-seconds still to run of the association's running "
        "jobs (TRES count x time left of the time limit), as GrpTRESRunMins counts them (mem in "
        "MB-seconds).",
        [*labels, "tres"],
        run,
    ))
    return families

"""The exporter's metric names beside Slurm's own (metrics/openmetrics, 25.11+): a site that
scrapes both must never get the two mixed in one query (issue 13, item 3)."""

from __future__ import annotations

from exporter.native_names import NATIVE_METRICS, SOURCE_TAGS
from tests.metrics_doc import all_families

# A name of ours may also be a native name only where both mean exactly the same thing
# (same labels, same count): name -> why. None does today (README "With Slurm's
# metrics/openmetrics" has the table of the names that did, and their new names).
SAME_MEANING: dict[str, str] = {}


def exposed_names() -> set[str]:
    """Every name the exporter can expose, every optional family switched on."""
    names = set()
    for _, fam in all_families():
        suffix = {"counter": "_total", "info": "_info"}.get(fam.type, "")
        names.add(fam.name + suffix)
    return names


def test_no_name_of_ours_is_a_native_name_that_means_something_else() -> None:
    shared = exposed_names() & NATIVE_METRICS.keys()
    other_meaning = {n: NATIVE_METRICS[n] for n in sorted(shared) if n not in SAME_MEANING}
    assert not other_meaning, (
        f"also Slurm's own metrics ({', '.join(SOURCE_TAGS)}), with another meaning: "
        f"{other_meaning}; rename ours (README: With Slurm's metrics/openmetrics)"
    )


def test_names_kept_for_their_same_meaning_are_still_shared() -> None:
    for name in SAME_MEANING:
        assert name in exposed_names() and name in NATIVE_METRICS, name


def test_the_native_list_is_slurms() -> None:
    """Spot checks of the generated list against openmetrics.c (slurm-26-05-3-1 lines)."""
    assert SOURCE_TAGS == ("slurm-25-11-7-1", "slurm-26-05-3-1")
    assert NATIVE_METRICS["slurm_jobs"][:3] == ("jobs", "", "25.11")  # 460
    assert NATIVE_METRICS["slurm_nodes"][:3] == ("nodes", "", "25.11")  # 409
    assert NATIVE_METRICS["slurm_partition_cpus"][:3] == ("partitions", "partition", "25.11")
    assert NATIVE_METRICS["slurm_user_jobs"][:3] == ("jobs-users-accts", "username", "25.11")
    assert NATIVE_METRICS["slurm_node_gpus"][:3] == ("nodes", "node", "26.05")  # 398
    # `ps->nodes_cpus_alloc,partition_nodes_cpus_alloc` (no space, 528) is read too
    assert "slurm_partition_nodes_cpus_alloc" in NATIVE_METRICS
    assert len(NATIVE_METRICS) == 259

"""Why nodes are out and since when: what `sinfo -R` lists, from the same `/nodes` answer.

Which nodes: those `sinfo -R` lists. Without -t, -R filters on the states "down,fail,drain"
(src/sinfo/opts.c, `params.states = xstrdup("down,fail,drain")`, slurm-22-05-11-1 to
slurm-26-05-3-1), and _filter_out() in src/sinfo/sinfo.c matches "drain" to any node with
the DRAIN flag (drained and draining), "fail" to the FAIL flag (fail, failing) and "down" to
the base state DOWN. FUTURE nodes are not listed (they are not in the cluster yet), nor nodes
that are only not responding (idle*) or powered down: those are not out. API v0.0.36 (22.05)
sends the base state alone (src/plugins/openapi/v0.0.36/nodes.c:125, slurm-22-05-11-1), so
there a drained node counts only when its base state is down, and shows as "down" (v0.0.37+
send the flags; the exporter picks the newest version). sinfo builds its lines from the
partitions it shows (_build_sinfo_data in src/sinfo/sinfo.c), so plain sinfo -R leaves out
nodes whose partitions are all hidden (sinfo -a -R lists them) and nodes in no partition;
the exporter counts every such node: it is as much out of service.

What: the reason, who set it and when, as sinfo's %E/%R (reason), %u (user) and %H
(timestamp) print them (src/sinfo/print.c _print_reason, _print_user, _print_timestamp):
no reason is "none"; a timestamp of 0 is "Unknown" here an absent since series. The user is
the name slurmrestd resolved (it sends no uid): "" where sinfo prints "Unknown" or "Unk(uid)".

Reasons are free text (NHC messages, "Kill task failed", whole stderr lines), so the label
is normalised by one rule, reason_label(): every run of control characters and white space
becomes one space, the ends are stripped, and a text longer than REASON_MAX characters is
cut to REASON_MAX - 1 characters plus "…". Ordinary reasons are unchanged, so the label is
exactly what sinfo -R prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prometheus_client.metrics_core import Metric

from exporter.api.model import Node
from exporter.collectors.families import ABSENT, Key, gauge

REASON_MAX = 128
# C0 controls, DEL, C1 controls and any white space (tab, newline, no-break space, ...)
_SPACE_RUN = re.compile(r"[\x00-\x20\x7f-\x9f\s]+")
# sinfo -R's default state filter, as flag words (the base state is among the words)
_OUT_WORDS = frozenset({"DOWN", "DRAIN", "FAIL"})
# the same as sinfo state names: v0.0.36 sends no flag words, only e.g. "drained"
_OUT_STATES = frozenset({"down", "drained", "draining", "drain", "fail", "failing"})


def reason_label(reason: str) -> str:
    """The reason as a label value (see the module doc): sinfo's text, bounded and on one line."""
    text = _SPACE_RUN.sub(" ", reason).strip()
    if not text:
        return "none"  # as sinfo prints a node without reason
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def is_out(node: Node) -> bool:
    """True for a node `sinfo -R` lists: down, drained/draining, fail/failing."""
    return node.state in _OUT_STATES or not _OUT_WORDS.isdisjoint(node.flags)


def collect_unavailable(nodes: Sequence[Node], *, per_node: bool = True) -> list[Metric]:
    """The count of out nodes by reason and state; per node, its reason and since when."""
    out = [n for n in nodes if is_out(n)]
    # once per distinct text: thousands of nodes often share a few reasons
    labels = {n.reason: reason_label(n.reason) for n in out}
    counts: dict[Key, int] = {}
    for node in out:
        key = (labels[node.reason], node.state)
        counts[key] = counts.get(key, 0) + 1
    families: list[Metric] = [
        gauge(
            "slurm_nodes_unavailable",
            "Nodes that sinfo -R lists (down, drained, draining, fail, failing) by reason "
            "(normalised as slurm_node_unavailable_info's) and state." + ABSENT,
            ["reason", "state"],
            counts,
        )
    ]
    if per_node:
        families += _per_node(out, labels)
    return families


def _per_node(out: Sequence[Node], labels: dict[str, str]) -> list[Metric]:
    return [
        gauge(
            "slurm_node_unavailable_info",
            "1 for each node that sinfo -R lists, with its state, its reason (control "
            f"characters and runs of spaces made one space, cut to {REASON_MAX} characters; "
            "none when unset) and the user who set it (set_by; empty when unknown).",
            ["node", "state", "reason", "set_by"],
            {(n.name, n.state, labels[n.reason], n.reason_user): 1 for n in out},
        ),
        gauge(
            "slurm_node_unavailable_since_timestamp_seconds",
            "When the reason of a node that sinfo -R lists was set (sinfo's TIMESTAMP), as "
            "a Unix time; absent when Slurm does not know (sinfo: Unknown).",
            ["node"],
            {(n.name,): n.reason_time for n in out if n.reason_time is not None},
        ),
    ]

"""Node metrics: what `sinfo` shows, cluster-wide, per partition and (optionally) per node.

CPU states follow `sinfo -o %C` (allocated/idle/other):

* allocated: the node's allocated CPUs, whatever state the node is in (a draining
  node's running jobs still hold their CPUs);
* other: the node's remaining (unallocated) CPUs when the node cannot take new
  jobs: it is DOWN, DRAINING or DRAINED (sinfo's rule), and also - where sinfo
  would still say idle - when it is FAIL/FAILING (set by `scontrol update
  state=fail`, which clears DRAIN) or FUTURE (hidden by sinfo unless --future);
* idle: the remaining CPUs of every other node, including nodes powered down by
  power saving (idle~), reserved or in maintenance, as sinfo counts them.

sinfo itself (_update_sinfo() in src/sinfo/sinfo.c, slurm-22-05-11-1 to slurm-26-05-3-1)
puts a node's unallocated CPUs in "other" only when it is DRAIN or DOWN: it counts FAIL
and FUTURE nodes' as idle, so on those nodes the two differ, and the HELP says so.

GPU idle follows the same rule: only on nodes that can take jobs, and per node
max(0, configured - allocated), so it is never negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.metrics_core import Metric

from exporter.api.model import Node
from exporter.collectors.families import ABSENT, Key, gauge
from exporter.collectors.nodes_out import collect_unavailable

# Raw state words (flags) and sinfo states of a node that cannot take new jobs.
_UNAVAILABLE_FLAGS = frozenset({"DOWN", "DRAIN", "FAIL", "FUTURE"})
_UNAVAILABLE_STATES = frozenset(
    {"down", "drain", "drained", "draining", "fail", "failing", "future"}
)

_CPU_STATES = ("allocated", "idle", "other")



def _can_take_jobs(node: Node) -> bool:
    """False when the node is down, drained/draining, failing or future."""
    return node.state not in _UNAVAILABLE_STATES and _UNAVAILABLE_FLAGS.isdisjoint(node.flags)


def _idle_gpus(node: Node) -> dict[str, int]:
    """Idle GPUs by type on a node that can take jobs; never negative.

    Allocations under a type the node does not list (e.g. an untyped `gres_used`
    against typed `gres`) are taken off the node's other types, so the node's
    idle sum never exceeds configured - allocated.
    """
    total, alloc = node.gpus_total, node.gpus_alloc
    idle = {t: max(0, n - alloc.get(t, 0)) for t, n in total.items()}
    unmatched = sum(n for t, n in alloc.items() if t not in total)
    if unmatched > 0:
        for t in sorted(idle):
            take = min(idle[t], unmatched)
            idle[t] -= take
            unmatched -= take
            if not unmatched:
                break
    return idle


def _add(acc: dict[Key, int], key: Key, value: int) -> None:
    acc[key] = acc.get(key, 0) + value


def _per_type(
    keys: Iterable[Key], *sources: Mapping[Key, int]
) -> list[dict[Key, int]]:
    """Fill every source with 0 for every key, so sibling families share label sets."""
    out = []
    for src in sources:
        full = dict.fromkeys(keys, 0)
        full.update(src)
        out.append(full)
    return out


def collect_nodes(
    nodes: Sequence[Node], *, per_node: bool = False, unavailable_per_node: bool = True
) -> list[Metric]:
    """Node, CPU, memory, GPU and unavailable-node families; per-node families only when
    per_node, the unavailable nodes' own series when unavailable_per_node."""
    states, part_states = _states(nodes)
    cpus, cpus_total, part_cpus = _cpus(nodes, {p for p, _ in part_states})
    gpus, part_gpus = _gpus(nodes)
    families: list[Metric] = [
        gauge(
            "slurm_nodes_by_state",
            "Number of nodes by state, as sinfo %T prints it without its suffix (idle, mixed, "
            "allocated, completing, draining, drained, down, fail, ...); each node counts once."
            + ABSENT,
            ["state"],
            states,
        ),
        gauge(
            "slurm_cpus",
            "CPUs by state, as sinfo %C counts them except on fail and future nodes: "
            "allocated (also on draining nodes), idle (unallocated on nodes that can take "
            "jobs, including powered-down ones) and other (unallocated on down, drained, "
            "draining, fail or future nodes; sinfo counts fail and future ones idle).",
            ["state"],
            cpus,
        ),
        gauge(
            "slurm_cpus_configured",
            "CPUs configured on all nodes (sum of scontrol's CPUTot); the sum of slurm_cpus.",
            [],
            {(): cpus_total},
        ),
        *_memory(nodes),
        *gpus,
        gauge(
            "slurm_partition_nodes_by_state",
            "Nodes of each partition by sinfo state; a node in several partitions counts in "
            "each." + ABSENT,
            ["partition", "state"],
            part_states,
        ),
        gauge(
            "slurm_partition_cpus_by_state",
            "CPUs of each partition's nodes by state as slurm_cpus counts them (allocated, "
            "idle, other); a node in several partitions counts in each.",
            ["partition", "state"],
            part_cpus,
        ),
        *part_gpus,
    ]
    families += collect_unavailable(nodes, per_node=unavailable_per_node)
    if per_node:
        families += _per_node(nodes)
    return families


def _states(nodes: Sequence[Node]) -> tuple[dict[Key, int], dict[Key, int]]:
    """Nodes by state, and by (partition, state)."""
    states: dict[Key, int] = {}
    part_states: dict[Key, int] = {}
    for node in nodes:
        _add(states, (node.state,), 1)
        for part in set(node.partitions):
            _add(part_states, (part, node.state), 1)
    return states, part_states


def _cpus(
    nodes: Sequence[Node], partitions: Iterable[str]
) -> tuple[dict[Key, int], int, dict[Key, int]]:
    """CPUs by state, configured in all, and by (partition, state) (see the module doc)."""
    cpus: dict[Key, int] = {(s,): 0 for s in _CPU_STATES}
    part_cpus: dict[Key, int] = {(p, s): 0 for p in partitions for s in _CPU_STATES}
    total = 0
    for node in nodes:
        alloc = node.alloc_cpus
        rest = max(0, node.cpus - alloc)
        rest_state = "idle" if _can_take_jobs(node) else "other"
        cpus[("allocated",)] += alloc
        cpus[(rest_state,)] += rest
        total += node.cpus
        for part in set(node.partitions):
            _add(part_cpus, (part, "allocated"), alloc)
            _add(part_cpus, (part, rest_state), rest)
    return cpus, total, part_cpus


def _memory(nodes: Sequence[Node]) -> list[Metric]:
    free = [n.free_memory_bytes for n in nodes if n.free_memory_bytes is not None]
    return [
        gauge(
            "slurm_memory_total_bytes",
            "Memory configured on all nodes (sum of RealMemory), in bytes.",
            [],
            {(): sum(n.real_memory_bytes for n in nodes)},
        ),
        gauge(
            "slurm_memory_allocated_bytes",
            "Memory allocated to jobs on all nodes (sum of AllocMem), in bytes.",
            [],
            {(): sum(n.alloc_memory_bytes for n in nodes)},
        ),
        gauge(
            "slurm_memory_free_bytes",
            "Free memory as the nodes' operating systems report it (sum of FreeMem over the "
            "nodes that report it), in bytes; absent when no node reports it.",
            [],
            {(): sum(free)} if free else {},
        ),
    ]


def _gpus(nodes: Sequence[Node]) -> tuple[list[Metric], list[Metric]]:
    """The cluster's GPU families and the partitions'."""
    total: dict[Key, int] = {}
    alloc: dict[Key, int] = {}
    idle: dict[Key, int] = {}
    part_total: dict[Key, int] = {}
    part_alloc: dict[Key, int] = {}
    for node in nodes:
        idle_gpus = _idle_gpus(node) if _can_take_jobs(node) else {}
        for t, n in node.gpus_total.items():
            _add(total, (t,), n)
            _add(idle, (t,), idle_gpus.get(t, 0))
        for t, n in node.gpus_alloc.items():
            _add(alloc, (t,), n)
        for part in set(node.partitions):
            for t, n in node.gpus_total.items():
                _add(part_total, (part, t), n)
            for t, n in node.gpus_alloc.items():
                _add(part_alloc, (part, t), n)
    # Every GPU type appears in all three cluster families (0 where none).
    total, alloc, idle = _per_type(total.keys() | alloc.keys(), total, alloc, idle)
    part_keys = part_total.keys() | part_alloc.keys()
    part_total, part_alloc = _per_type(part_keys, part_total, part_alloc)
    cluster: list[Metric] = [
        gauge(
            "slurm_gpus_configured",
            "GPUs configured on all nodes (node Gres), by GPU type.",
            ["type"],
            total,
        ),
        gauge(
            "slurm_gpus_allocated",
            "GPUs allocated to jobs on all nodes (node GresUsed), by GPU type.",
            ["type"],
            alloc,
        ),
        gauge(
            "slurm_gpus_idle",
            "Unallocated GPUs on nodes that can take jobs (not down, drained, draining, fail "
            "or future), by GPU type; counted per node as max(0, configured - allocated).",
            ["type"],
            idle,
        ),
    ]
    partitions: list[Metric] = [
        gauge(
            "slurm_partition_gpus_configured",
            "GPUs configured on each partition's nodes, by GPU type; a node in several "
            "partitions counts in each.",
            ["partition", "type"],
            part_total,
        ),
        gauge(
            "slurm_partition_gpus_allocated",
            "GPUs allocated to jobs on each partition's nodes (by jobs of any partition), by "
            "GPU type; a node in several partitions counts in each.",
            ["partition", "type"],
            part_alloc,
        ),
    ]
    return cluster, partitions


def _per_node(nodes: Sequence[Node]) -> list[Metric]:
    gpus_total: dict[Key, int] = {}
    gpus_alloc: dict[Key, int] = {}
    for node in nodes:
        for t, n in node.gpus_total.items():
            gpus_total[(node.name, t)] = n
            gpus_alloc[(node.name, t)] = 0
        for t, n in node.gpus_alloc.items():
            gpus_alloc[(node.name, t)] = n
    return [
        gauge(
            "slurm_node_state",
            "1 for the node's current state as sinfo %T prints it, without its suffix.",
            ["node", "state"],
            {(n.name, n.state): 1 for n in nodes},
        ),
        gauge(
            "slurm_node_cpus_configured",
            "CPUs configured on the node (scontrol's CPUTot).",
            ["node"],
            {(n.name,): n.cpus for n in nodes},
        ),
        gauge(
            "slurm_node_cpus_allocated",
            "CPUs allocated to jobs on the node (scontrol's CPUAlloc).",
            ["node"],
            {(n.name,): n.alloc_cpus for n in nodes},
        ),
        gauge(
            "slurm_node_memory_total_bytes",
            "Memory configured on the node (scontrol's RealMemory), in bytes.",
            ["node"],
            {(n.name,): n.real_memory_bytes for n in nodes},
        ),
        gauge(
            "slurm_node_memory_allocated_bytes",
            "Memory allocated to jobs on the node (scontrol's AllocMem), in bytes.",
            ["node"],
            {(n.name,): n.alloc_memory_bytes for n in nodes},
        ),
        gauge(
            "slurm_node_free_memory_bytes",
            "Free memory as the node's operating system reports it (scontrol's FreeMem), "
            "in bytes; absent when the node does not report it.",
            ["node"],
            {(n.name,): n.free_memory_bytes for n in nodes if n.free_memory_bytes is not None},
        ),
        gauge(
            "slurm_node_cpu_load",
            "The node's load average as Slurm reports it (scontrol's CPULoad); absent when "
            "the node has not reported one (N/A).",
            ["node"],
            {(n.name,): n.cpu_load for n in nodes if n.cpu_load is not None},
        ),
        gauge(
            "slurm_node_gpus_configured",
            "GPUs configured on the node (Gres), by GPU type.",
            ["node", "type"],
            gpus_total,
        ),
        gauge(
            "slurm_node_gpus_allocated",
            "GPUs allocated to jobs on the node (GresUsed), by GPU type.",
            ["node", "type"],
            gpus_alloc,
        ),
    ]

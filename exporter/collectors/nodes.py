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

GPU idle follows the same rule: only on nodes that can take jobs, and per node
max(0, configured - allocated), so it is never negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import Node

# Raw state words (flags) and sinfo states of a node that cannot take new jobs.
_UNAVAILABLE_FLAGS = frozenset({"DOWN", "DRAIN", "FAIL", "FUTURE"})
_UNAVAILABLE_STATES = frozenset(
    {"down", "drain", "drained", "draining", "fail", "failing", "future"}
)

_CPU_STATES = ("allocated", "idle", "other")

_ABSENT = " Absent series mean 0."


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


def _add(acc: dict[tuple[str, ...], int], key: tuple[str, ...], value: int) -> None:
    acc[key] = acc.get(key, 0) + value


def _gauge(
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Mapping[tuple[str, ...], float],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for key in sorted(values):
        family.add_metric(key, values[key])
    return family


def _per_type(
    keys: Iterable[tuple[str, ...]], *sources: Mapping[tuple[str, ...], int]
) -> list[dict[tuple[str, ...], int]]:
    """Fill every source with 0 for every key, so sibling families share label sets."""
    out = []
    for src in sources:
        full = dict.fromkeys(keys, 0)
        full.update(src)
        out.append(full)
    return out


def collect_nodes(nodes: Sequence[Node], *, per_node: bool = False) -> list[Metric]:
    """Node, CPU, memory and GPU families; per-node families only when per_node."""
    node_states: dict[tuple[str, ...], int] = {}
    cpus: dict[tuple[str, ...], int] = {(s,): 0 for s in _CPU_STATES}
    cpus_total = 0
    mem_total = mem_alloc = mem_free = 0
    mem_free_reported = False
    gpus_total: dict[tuple[str, ...], int] = {}
    gpus_alloc: dict[tuple[str, ...], int] = {}
    gpus_idle: dict[tuple[str, ...], int] = {}

    part_nodes: dict[tuple[str, ...], int] = {}
    part_cpus: dict[tuple[str, ...], int] = {}
    part_gpus_total: dict[tuple[str, ...], int] = {}
    part_gpus_alloc: dict[tuple[str, ...], int] = {}

    n_state: dict[tuple[str, ...], int] = {}
    n_cpus_total: dict[tuple[str, ...], int] = {}
    n_cpus_alloc: dict[tuple[str, ...], int] = {}
    n_mem_total: dict[tuple[str, ...], int] = {}
    n_mem_alloc: dict[tuple[str, ...], int] = {}
    n_mem_free: dict[tuple[str, ...], int] = {}
    n_load: dict[tuple[str, ...], float] = {}
    n_gpus_total: dict[tuple[str, ...], int] = {}
    n_gpus_alloc: dict[tuple[str, ...], int] = {}

    for node in nodes:
        state = node.state
        _add(node_states, (state,), 1)

        alloc = node.alloc_cpus
        rest = max(0, node.cpus - alloc)
        available = _can_take_jobs(node)
        rest_state = "idle" if available else "other"
        cpus[("allocated",)] += alloc
        cpus[(rest_state,)] += rest
        cpus_total += node.cpus

        mem_total += node.real_memory_bytes
        mem_alloc += node.alloc_memory_bytes
        if node.free_memory_bytes is not None:
            mem_free += node.free_memory_bytes
            mem_free_reported = True

        idle_gpus = _idle_gpus(node) if available else {}
        for t, n in node.gpus_total.items():
            _add(gpus_total, (t,), n)
            _add(gpus_idle, (t,), idle_gpus.get(t, 0))
        for t, n in node.gpus_alloc.items():
            _add(gpus_alloc, (t,), n)

        for part in set(node.partitions):
            _add(part_nodes, (part, state), 1)
            _add(part_cpus, (part, "allocated"), alloc)
            _add(part_cpus, (part, rest_state), rest)
            for t, n in node.gpus_total.items():
                _add(part_gpus_total, (part, t), n)
            for t, n in node.gpus_alloc.items():
                _add(part_gpus_alloc, (part, t), n)

        if per_node:
            name = node.name
            key = (name,)
            n_state[(name, state)] = 1
            n_cpus_total[key] = node.cpus
            n_cpus_alloc[key] = alloc
            n_mem_total[key] = node.real_memory_bytes
            n_mem_alloc[key] = node.alloc_memory_bytes
            if node.free_memory_bytes is not None:
                n_mem_free[key] = node.free_memory_bytes
            n_load[key] = node.cpu_load
            for t, n in node.gpus_total.items():
                n_gpus_total[(name, t)] = n
            for t in node.gpus_total:
                n_gpus_alloc[(name, t)] = 0
            for t, n in node.gpus_alloc.items():
                n_gpus_alloc[(name, t)] = n

    # Every GPU type appears in all three cluster families (0 where none).
    gpu_types = gpus_total.keys() | gpus_alloc.keys()
    gpus_total, gpus_alloc, gpus_idle = _per_type(gpu_types, gpus_total, gpus_alloc, gpus_idle)
    part_gpu_keys = part_gpus_total.keys() | part_gpus_alloc.keys()
    part_gpus_total, part_gpus_alloc = _per_type(part_gpu_keys, part_gpus_total, part_gpus_alloc)
    for part in {p for p, _ in part_nodes}:
        for s in _CPU_STATES:
            part_cpus.setdefault((part, s), 0)

    families: list[Metric] = [
        _gauge(
            "slurm_nodes",
            "Number of nodes by state, as sinfo %T prints it without its suffix (idle, mixed, "
            "allocated, completing, draining, drained, down, fail, ...); each node counts once."
            + _ABSENT,
            ["state"],
            node_states,
        ),
        _gauge(
            "slurm_cpus",
            "CPUs by state as sinfo %C counts them: allocated (also on draining nodes), idle "
            "(unallocated on nodes that can take jobs, including powered-down ones) and other "
            "(unallocated on down, drained, draining, fail or future nodes).",
            ["state"],
            cpus,
        ),
        _gauge(
            "slurm_cpus_configured",
            "CPUs configured on all nodes (sum of scontrol's CPUTot); the sum of slurm_cpus.",
            [],
            {(): cpus_total},
        ),
        _gauge(
            "slurm_memory_total_bytes",
            "Memory configured on all nodes (sum of RealMemory), in bytes.",
            [],
            {(): mem_total},
        ),
        _gauge(
            "slurm_memory_allocated_bytes",
            "Memory allocated to jobs on all nodes (sum of AllocMem), in bytes.",
            [],
            {(): mem_alloc},
        ),
        _gauge(
            "slurm_memory_free_bytes",
            "Free memory as the nodes' operating systems report it (sum of FreeMem over the "
            "nodes that report it), in bytes; absent when no node reports it.",
            [],
            {(): mem_free} if mem_free_reported else {},
        ),
        _gauge(
            "slurm_gpus_configured",
            "GPUs configured on all nodes (node Gres), by GPU type.",
            ["type"],
            gpus_total,
        ),
        _gauge(
            "slurm_gpus_allocated",
            "GPUs allocated to jobs on all nodes (node GresUsed), by GPU type.",
            ["type"],
            gpus_alloc,
        ),
        _gauge(
            "slurm_gpus_idle",
            "Unallocated GPUs on nodes that can take jobs (not down, drained, draining, fail "
            "or future), by GPU type; counted per node as max(0, configured - allocated).",
            ["type"],
            gpus_idle,
        ),
        _gauge(
            "slurm_partition_nodes",
            "Nodes of each partition by sinfo state; a node in several partitions counts in "
            "each." + _ABSENT,
            ["partition", "state"],
            part_nodes,
        ),
        _gauge(
            "slurm_partition_cpus",
            "CPUs of each partition's nodes by state as sinfo %C counts them (allocated, "
            "idle, other; see slurm_cpus); a node in several partitions counts in each.",
            ["partition", "state"],
            part_cpus,
        ),
        _gauge(
            "slurm_partition_gpus_configured",
            "GPUs configured on each partition's nodes, by GPU type; a node in several "
            "partitions counts in each.",
            ["partition", "type"],
            part_gpus_total,
        ),
        _gauge(
            "slurm_partition_gpus_allocated",
            "GPUs allocated to jobs on each partition's nodes (by jobs of any partition), by "
            "GPU type; a node in several partitions counts in each.",
            ["partition", "type"],
            part_gpus_alloc,
        ),
    ]
    if per_node:
        families += [
            _gauge(
                "slurm_node_state",
                "1 for the node's current state as sinfo %T prints it, without its suffix.",
                ["node", "state"],
                n_state,
            ),
            _gauge(
                "slurm_node_cpus_configured",
                "CPUs configured on the node (scontrol's CPUTot).",
                ["node"],
                n_cpus_total,
            ),
            _gauge(
                "slurm_node_cpus_allocated",
                "CPUs allocated to jobs on the node (scontrol's CPUAlloc).",
                ["node"],
                n_cpus_alloc,
            ),
            _gauge(
                "slurm_node_memory_total_bytes",
                "Memory configured on the node (scontrol's RealMemory), in bytes.",
                ["node"],
                n_mem_total,
            ),
            _gauge(
                "slurm_node_memory_allocated_bytes",
                "Memory allocated to jobs on the node (scontrol's AllocMem), in bytes.",
                ["node"],
                n_mem_alloc,
            ),
            _gauge(
                "slurm_node_memory_free_bytes",
                "Free memory as the node's operating system reports it (scontrol's FreeMem), "
                "in bytes; absent when the node does not report it.",
                ["node"],
                n_mem_free,
            ),
            _gauge(
                "slurm_node_cpu_load",
                "The node's load average as Slurm reports it (scontrol's CPULoad).",
                ["node"],
                n_load,
            ),
            _gauge(
                "slurm_node_gpus_configured",
                "GPUs configured on the node (Gres), by GPU type.",
                ["node", "type"],
                n_gpus_total,
            ),
            _gauge(
                "slurm_node_gpus_allocated",
                "GPUs allocated to jobs on the node (GresUsed), by GPU type.",
                ["node", "type"],
                n_gpus_alloc,
            ),
        ]
    return families

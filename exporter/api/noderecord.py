"""Node records of `/nodes`: one Struct for every generation, as jobrecord.py for jobs.

22.05 gives a lower-case base `state` plus `state_flags` (none at all in v0.0.36, which
also lacks partitions and allocations) and `free_memory`; v0.0.40+ a list of base and
flag words in `state` and `free_mem`. Each answer fills the fields of its own generation.
"""

from __future__ import annotations

import msgspec

from exporter.api import normalise as norm
from exporter.api.decoding import Num, integer, number, optional_int
from exporter.api.jobrecord import state_words
from exporter.api.model import Node


class RawNode(msgspec.Struct, gc=False):
    name: str
    state: tuple[str, ...] | str | None = None  # 22.05: "mixed"; later ["MIXED", "DRAIN"]
    state_flags: tuple[str, ...] | None = None  # 22.05 (v0.0.37+)
    partitions: tuple[str, ...] | None = None
    cpus: Num = None
    alloc_cpus: Num = None
    real_memory: Num = None  # MiB
    alloc_memory: Num = None  # MiB
    free_memory: Num = None  # MiB, 22.05
    free_mem: Num = None  # MiB, v0.0.40+
    cpu_load: Num = None  # load x 100
    gres: str | None = None
    gres_used: str | None = None
    reason: str | None = None
    reason_changed_at: Num = None  # Unix time; 0 or unset: unknown
    reason_set_by_user: str | None = None  # user name; null (22.05) or "" when unknown


class NodeMemo:
    """Per-answer memo of node state words and GRES strings (see jobrecord.to_job)."""

    def __init__(self) -> None:
        self.states: dict[object, tuple[str, tuple[str, ...]]] = {}
        self.gres: dict[str | None, dict[str, int]] = {}

    def state(
        self, value: tuple[str, ...] | str | None, flags: tuple[str, ...] | None
    ) -> tuple[str, tuple[str, ...]]:
        key = (value, flags)
        found = self.states.get(key)
        if found is None:
            words = [*state_words(value), *(flags or ())]
            found = self.states[key] = (
                norm.node_state(words),
                tuple(w.upper() for w in words if w),
            )
        return found

    def gpus(self, gres: str | None) -> dict[str, int]:
        found = self.gres.get(gres)
        if found is None:
            found = self.gres[gres] = norm.gres_gpus(gres)
        return found


def to_node(raw: RawNode, memo: NodeMemo) -> Node:
    state, flags = memo.state(raw.state, raw.state_flags)
    free = optional_int(raw.free_mem if raw.free_mem is not None else raw.free_memory)
    load = number(raw.cpu_load)
    return Node(
        name=raw.name,
        state=state,
        flags=flags,
        partitions=raw.partitions or (),
        cpus=integer(raw.cpus),
        alloc_cpus=integer(raw.alloc_cpus),
        real_memory_bytes=norm.mib_to_bytes(optional_int(raw.real_memory)),
        alloc_memory_bytes=norm.mib_to_bytes(optional_int(raw.alloc_memory)),
        free_memory_bytes=None if free is None or free < 0 else norm.mib_to_bytes(free),
        # NO_VAL (no load reported yet): unknown, not 0
        cpu_load=None if load is None else float(load) / 100,
        gpus_total=memo.gpus(raw.gres),
        gpus_alloc=memo.gpus(raw.gres_used),
        reason=raw.reason or "",
        # 0: never set (sinfo prints "Unknown", src/sinfo/print.c _print_timestamp)
        reason_time=optional_int(raw.reason_changed_at) or None,
        reason_user=raw.reason_set_by_user or "",
    )

"""Why nodes are out: the exporter says what `sinfo -R` says, node by node (state, reason,
user, timestamp), before and after `scontrol update ... state=drain|down reason=...`.

The lab's spare[1-2] (slurmlab.sh --spare-nodes) have no slurmd and no jobs: they start
DOWN with slurm.conf's Reason (user root, timestamp Unknown) and are drained / downed here;
node1 and its job mix are left alone.
"""

from __future__ import annotations

import re
import time

import pytest

from exporter.collectors.nodes_out import reason_label
from tests.integration.lab import Lab
from tests.integration.serving import Samples
from tests.integration.test_live import exporter_samples

_SUFFIX = re.compile(r"[*~#!%$@^\-]+$")
DRAIN_REASON = "NHC: check_fs_mount: /scratch not mounted"
# a tab and 150 characters: the label is the documented rule applied to sinfo's text
DOWN_REASON = "Kill task failed:\t" + "x" * 150

Row = tuple[str, str, str, float | None]  # state, reason, set_by, since


def sinfo_r(lab: Lab) -> dict[str, tuple[str, str, str, str]]:
    """sinfo -R's rows per node as printed (state without suffix), timestamps as Unix time."""
    out = lab.slurm("env", "SLURM_TIME_FORMAT=%s", "sinfo", "-R", "-h", "-N",
                    "-o", "%N|%T|%E|%u|%H")
    rows = {}
    for line in out.splitlines():
        name, state, reason, user, stamp = line.split("|")
        rows[name] = (_SUFFIX.sub("", state), reason, user, stamp)
    return rows


def as_labels(rows: dict[str, tuple[str, str, str, str]]) -> dict[str, Row]:
    return {
        name: (state, reason_label(reason), "" if user.startswith("Unk") else user,
               None if stamp == "Unknown" else float(stamp))
        for name, (state, reason, user, stamp) in rows.items()
    }


def exported(samples: Samples) -> dict[str, Row]:
    since = {lab["node"]: v for lab, v in
             samples.get("slurm_node_unavailable_since_timestamp_seconds", [])}
    return {
        lab["node"]: (lab["state"], lab["reason"], lab["set_by"], since.get(lab["node"]))
        for lab, _ in samples.get("slurm_node_unavailable_info", [])
    }


@pytest.mark.parametrize("mode", ["once", "server"])
def test_unavailable_nodes_equal_sinfo_R(
    lab: Lab, mode: str, request: pytest.FixtureRequest
) -> None:
    before = sinfo_r(lab)
    assert {"spare1", "spare2"} <= before.keys() and "node1" not in before
    assert exported(exporter_samples(lab, mode, request)) == as_labels(before)

    lab.slurm("scontrol", "update", "nodename=spare1", "state=drain", f"reason={DRAIN_REASON}")
    lab.slurm("scontrol", "update", "nodename=spare2", "state=down", f"reason={DOWN_REASON}")
    t = time.time()
    after = sinfo_r(lab)
    assert after["spare1"][:3] == ("drained", DRAIN_REASON, "root")
    assert after["spare2"][:3] == ("down", DOWN_REASON, "root")
    assert all(abs(float(row[3]) - t) < 60 for row in after.values())
    samples = exporter_samples(lab, mode, request)
    got = exported(samples)
    assert got == as_labels(after)
    assert got["spare1"][1] == DRAIN_REASON  # an ordinary reason is sinfo's text, unchanged
    counts = {(lab_["reason"], lab_["state"]): v
              for lab_, v in samples["slurm_nodes_unavailable"]}
    assert counts == {(r, s): 1 for s, r, _, _ in got.values()}

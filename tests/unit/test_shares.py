"""/shares (sshare): decoding every API version's answer, and the shares collector."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.api import decoding
from exporter.api.model import Share
from exporter.api.sharerecord import FS_USE_PARENT, quote_specials
from exporter.api.v0036 import V0036Adapter
from exporter.api.v0040 import V0040Adapter
from exporter.collectors.shares import collect_shares
from exporter.cycle import render
from tests.integration.test_shares_live import Samples, differences, parse_sshare
from tests.unit.test_fuzz import FUZZ, _chunks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
# slurmdbd labs: the only ones with associations
RECORDED = [
    ("24.11", "v0.0.40"), ("24.11", "v0.0.41"), ("24.11", "v0.0.42"),
    ("26.05", "v0.0.42"), ("26.05", "v0.0.43"), ("26.05", "v0.0.44"), ("26.05", "v0.0.45"),
]


def recorded(release: str, version: str, dbd: bool = True) -> bytes:
    folder = f"slurm-{release}-slurmdbd" if dbd else f"slurm-{release}"
    return (FIXTURES / folder / f"{version}_shares.json").read_bytes()


def shares(release: str, version: str) -> list[Share]:
    return V0040Adapter(version).parse_shares(recorded(release, version)).data


@pytest.mark.parametrize(("release", "version"), RECORDED)
def test_every_version_reads_the_same_associations(release: str, version: str) -> None:
    # the lab's tree, as sshare -a -l -P printed it (Account|User|RawShares|NormShares|
    # RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS):
    #   root|||0.000000|0||1.000000||||
    #    root|root|1|0.333333|0|0.000000|0.000000|1.000000|inf|
    #    physics||1|0.333333|0||0.000000||0.000000|
    #     physics|alice|1|1.000000|0||0.000000|0.000000|0.000000|
    got = {(s.name, s.parent, s.user): s for s in shares(release, version)}
    root = got[("root", "", False)]
    assert root.shares_raw is None and root.level_fs is None and root.usage_norm is None
    assert root.usage_effective == 1.0
    user_root = got[("root", "root", True)]
    assert user_root.level_fs == math.inf  # v0.0.40/41: bare Infinity; 26.05: 2^64
    assert (user_root.fairshare_factor, user_root.usage_norm) == (1.0, 0.0)
    physics = got[("physics", "root", False)]
    assert (physics.shares_raw, physics.shares_norm, physics.level_fs) == (1, 1 / 3, 0.0)
    assert got[("alice", "physics", True)].shares_norm == 1.0
    assert dict(physics.tres_run_seconds)["cpu"] == 0
    assert len(got) == 7


@pytest.mark.parametrize(("release", "version"), RECORDED)
def test_decoded_while_it_arrives_whatever_the_chunks(release: str, version: str) -> None:
    body = recorded(release, version)
    whole = V0040Adapter(version).parse_shares(body).data
    for size in (1, 7, 100, 4096):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert V0040Adapter(version).parse_shares_stream(chunks).data == whole


def test_without_accounting_the_answer_is_empty_and_says_why() -> None:
    r = V0040Adapter("v0.0.42").parse_shares(recorded("24.11", "v0.0.42", dbd=False))
    assert r.data == [] and "accounting storage is disabled" in r.warnings[0]


def test_2205_has_no_shares() -> None:
    assert not V0036Adapter("v0.0.38").serves("shares")
    assert V0040Adapter("v0.0.40").serves("shares")
    assert V0040Adapter("v0.0.42").path("shares") == "/slurm/v0.0.42/shares"


def test_per_user_series_only_with_the_flag() -> None:
    data = shares("26.05", "v0.0.45")
    names = {f.name for f in collect_shares(data, per_user=False)}
    assert names and all(n.startswith("slurm_account_") for n in names)
    users = {f.name for f in collect_shares(data, per_user=True)} - names
    assert "slurm_user_fairshare_factor" in users


def test_golden_exposition() -> None:
    body = (FIXTURES / "slurm-24.11-slurmdbd" / "v0.0.42_shares_usage.json").read_bytes()
    data = V0040Adapter("v0.0.42").parse_shares(body).data
    text = render(collect_shares(data, per_user=True)).decode()
    path = GOLDEN / "shares.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _samples(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out.setdefault(smp.name, []).append((smp.labels, smp.value))
    return out


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_recorded_usage_equals_sshare_of_the_same_moment(version: str) -> None:
    """Answers recorded with sshare -a -l -P before and after (unchanged): a cluster with
    usage (RawUsage 154, FairShare 0.25, LevelFS 0.333333 and inf), PriorityCalcPeriod=1
    and AccountingStorageEnforce=limits (TRESRunMins is counted only then:
    src/slurmctld/acct_policy.c:892, slurm-24-11-5-1)."""
    folder = FIXTURES / "slurm-24.11-slurmdbd"
    body = (folder / f"{version}_shares_usage.json").read_bytes()
    data = V0040Adapter(version).parse_shares(body).data
    samples = _samples(render(collect_shares(data, per_user=True)).decode())
    rows = parse_sshare((folder / "sshare_usage.txt").read_text())
    assert differences(rows, samples) == []


def _edited(version: str, edit: Callable[[dict[str, Any]], None], compact: bool = False) -> bytes:
    """The 24.11 answer with each association passed to `edit`, printed again as
    slurmrestd prints it: pretty (2 spaces) or SLURMRESTD_JSON=compact, with the bare
    word Infinity kept (json.dumps prints it as json-c does)."""
    doc = json.loads(recorded("24.11", version))
    for record in doc["shares"]["shares"]:
        edit(record)
    if compact:
        return json.dumps(doc, separators=(",", ":")).encode()
    return (json.dumps(doc, indent=2) + "\n").encode()


def test_no_level_for_fairshare_parent() -> None:
    # sshare prints LevelFS blank for Fairshare=parent (process.c:276-280,
    # slurm-24-11-5-1), though fair_tree.c:188-191 stores INFINITY (user) or NO_VAL
    def parent(record: dict[str, Any]) -> None:
        if record["name"] in ("alice", "physics"):
            record["shares"]["number"] = FS_USE_PARENT
            record["fairshare"]["level"] = math.inf if "USER" in record["type"] else 0.5

    got = {s.name: s for s in V0040Adapter("v0.0.41").parse_shares(_edited("v0.0.41", parent)).data}
    assert got["alice"].shares_raw is None and got["alice"].level_fs is None
    assert got["physics"].level_fs is None
    assert got["science"].level_fs is not None


def test_classic_fairshare_exports_no_factor_and_no_level() -> None:
    # PriorityFlags=NO_FAIR_TREE: only fair_tree.c:205,372 set level_fs and fs_factor, so
    # slurmctld sends the 0 of slurmdb_defs.c:643-644 for all, and sshare computes its
    # own factor (process.c:265-272, slurm-24-11-5-1) from FairShareDampeningFactor,
    # which /shares does not carry
    def classic(record: dict[str, Any]) -> None:
        record["fairshare"] = {"factor": 0.0, "level": 0.0}

    data = V0040Adapter("v0.0.41").parse_shares(_edited("v0.0.41", classic)).data
    samples = _samples(render(collect_shares(data, per_user=True)).decode())
    assert "slurm_user_fairshare_factor" not in samples
    assert "slurm_user_fairshare_level" not in samples
    assert "slurm_account_fairshare_level" not in samples
    assert samples["slurm_user_fairshare_usage_effective"]
    fair_tree = _samples(render(collect_shares(shares("24.11", "v0.0.41"), True)).decode())
    assert fair_tree["slurm_user_fairshare_factor"]


def _with_specials(record: dict[str, Any]) -> None:
    # every bare word json-c prints, and one inside a string, which stays as it is
    if record["name"] == "physics":
        record["effective_usage"] = -math.inf
        record["cluster"] = 'x: NaN, "y":Infinity}'
    if record["name"] == "alice":
        record["fairshare"]["factor"] = math.nan


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41"])
def test_compact_answers_decode_as_pretty_ones(version: str) -> None:
    # SLURMRESTD_JSON=compact (src/slurmrestd/slurmrestd.c:230, slurm-24-11-5-1) prints
    # `"level":Infinity}`: no space, no line end
    pretty = V0040Adapter(version).parse_shares(_edited(version, _with_specials)).data
    compact = _edited(version, _with_specials, compact=True)
    assert b"\n" not in compact and b'"level":Infinity' in compact
    assert V0040Adapter(version).parse_shares(compact).data == pretty
    got = {(s.name, s.parent): s for s in pretty}
    assert got[("root", "root")].level_fs == math.inf
    assert got[("physics", "root")].usage_effective == -math.inf
    assert got[("alice", "physics")].fairshare_factor is None  # NaN: unset
    for size in (1, 7, 100):
        chunks = [compact[i : i + size] for i in range(0, len(compact), size)]
        assert V0040Adapter(version).parse_shares_stream(chunks).data == pretty


@pytest.mark.parametrize("compact", [False, True])
def test_specials_are_quoted_alike_at_any_chunk_boundary(compact: bool) -> None:
    body = _edited("v0.0.40", _with_specials, compact)
    whole = b"".join(quote_specials([body]))
    assert b"\"Infinity\"" in whole and b'"-Infinity"' in whole and b'"NaN"' in whole
    # every cut from before a special's key to after the member's end
    near = {k for m in re.finditer(rb"Infinity|NaN", body) for k in range(m.start() - 12,
                                                                           m.end() + 14)}
    for k in sorted(near):
        assert b"".join(quote_specials([body[:k], body[k:]])) == whole, k
    assert b"".join(quote_specials(body[i : i + 1] for i in range(len(body)))) == whole


def test_a_compact_answer_is_quoted_while_it_arrives() -> None:
    body = _edited("v0.0.40", _with_specials, compact=True)
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 100):
            read.append(i)
            yield body[i : i + 100]

    assert next(p for p in quote_specials(chunks()) if p)
    assert len(read) < 3  # not held until the end of the answer


@pytest.mark.parametrize("compact", [False, True])
@FUZZ
@given(cuts=st.lists(st.integers(0, 2**16), max_size=12))
def test_any_chunking_of_an_answer_with_specials_gives_the_whole_decode(
    compact: bool, cuts: list[int]
) -> None:
    body = _edited("v0.0.41", _with_specials, compact)
    whole = V0040Adapter("v0.0.41").parse_shares(body)
    with mock.patch.object(decoding, "_BATCH", 1):
        streamed = V0040Adapter("v0.0.41").parse_shares_stream(iter(_chunks(body, cuts)))
    assert streamed.data == whole.data

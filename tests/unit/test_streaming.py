"""Jobs and nodes decoded while they arrive give what decoding the whole answer gives.

`parse_jobs_stream` / `parse_nodes_stream` cut slurmrestd's pretty-printed array into
batches of elements as the chunks come in; whatever the chunking, the result (data,
meta, warnings) and the errors must be those of `parse_jobs` / `parse_nodes`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.api.errors import DecodeError, SlurmError
from exporter.api.versions import adapter_for

FIXTURES = Path(__file__).parent.parent / "fixtures"
CASES = sorted(
    (p.parent.name, p.name.split("_")[0], p.name.split("_")[1].removesuffix(".json"))
    for p in FIXTURES.glob("slurm-*/v0.0.*_*.json")
    if p.name.endswith(("_jobs.json", "_nodes.json"))
)


def pieces(body: bytes, sizes: tuple[int, ...], seed: int = 0) -> Iterator[bytes]:
    rng = random.Random(seed)
    i = 0
    while i < len(body):
        n = rng.choice(sizes)
        yield body[i : i + n]
        i += n


def both(version: str, endpoint: str, body: bytes, sizes: tuple[int, ...]) -> tuple[object, object]:
    adapter = adapter_for(version)
    whole = getattr(adapter, f"parse_{endpoint}")(body)
    streamed = getattr(adapter, f"parse_{endpoint}_stream")(pieces(body, sizes))
    return whole, streamed


@pytest.mark.parametrize(("folder", "version", "endpoint"), CASES)
@pytest.mark.parametrize("sizes", [(1, 13, 97), (5, 64, 999), (65536,), (1 << 30,)])
def test_same_result_whatever_the_chunks(
    folder: str, version: str, endpoint: str, sizes: tuple[int, ...]
) -> None:
    body = (FIXTURES / folder / f"{version}_{endpoint}.json").read_bytes()
    whole, streamed = both(version, endpoint, body, sizes)
    assert streamed == whole


@pytest.mark.parametrize("version", ["v0.0.38", "v0.0.42", "v0.0.45"])
def test_compact_json_is_decoded_whole(version: str) -> None:
    folder = {"v0.0.38": "slurm-22.05", "v0.0.42": "slurm-24.11", "v0.0.45": "slurm-26.05"}
    raw = (FIXTURES / folder[version] / f"{version}_jobs.json").read_bytes()
    body = json.dumps(json.loads(raw)).encode()  # no newlines at all
    whole, streamed = both(version, "jobs", body, (100,))
    assert streamed == whole
    assert whole.data  # type: ignore[attr-defined]


def _doc(version: str = "v0.0.45") -> dict[str, object]:
    raw = (FIXTURES / "slurm-26.05" / f"{version}_jobs.json").read_bytes()
    data: dict[str, object] = json.loads(raw)
    return data


def _pretty(doc: object) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def test_empty_array() -> None:
    doc = _doc()
    doc["jobs"] = []
    whole, streamed = both("v0.0.45", "jobs", _pretty(doc), (7,))
    assert streamed == whole and whole.data == []  # type: ignore[attr-defined]


def test_empty_array_printed_over_two_lines() -> None:
    """json-c may print an empty array as "[", a newline, the indent and "]"."""
    doc = _doc()
    doc["jobs"] = []
    doc["warnings"] = [{"description": "a", "source": "b"}, {"description": "c", "source": "d"}]
    body = _pretty(doc).replace(b'"jobs": []', b'"jobs": [\n  ]')
    assert b'"jobs": [\n  ]' in body
    whole, streamed = both("v0.0.45", "jobs", body, (1, 7))
    assert streamed == whole and whole.data == []  # type: ignore[attr-defined]
    assert whole.warnings == ("a", "c")  # type: ignore[attr-defined]


def test_errors_raise_like_the_whole_decode() -> None:
    doc = _doc()
    doc["errors"] = [{"error_number": 1001, "error": "Unable to contact slurm controller"}]
    adapter = adapter_for("v0.0.45")
    for parse in (lambda b: adapter.parse_jobs(b),
                  lambda b: adapter.parse_jobs_stream(pieces(b, (333,)))):
        with pytest.raises(SlurmError, match="Unable to contact slurm controller"):
            parse(_pretty(doc))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_answers_are_decode_errors(cut: float) -> None:
    body = _pretty(_doc())
    adapter = adapter_for("v0.0.45")
    with pytest.raises(DecodeError):
        adapter.parse_jobs_stream(pieces(body[: int(len(body) * cut)], (4096,)))


@pytest.mark.parametrize("body", [b"", b"  \n", b"<html>Bad Gateway</html>", b"\x00\xff" * 9,
                                  b'{"jobs": "nope"}', b"[]", b"null"])
def test_garbage_is_a_decode_error(body: bytes) -> None:
    for version in ("v0.0.38", "v0.0.45"):
        with pytest.raises(DecodeError):
            adapter_for(version).parse_jobs_stream(pieces(body, (3,)))


def test_a_bad_element_is_named_by_its_index_in_the_answer() -> None:
    doc = _doc()
    jobs = doc["jobs"]
    assert isinstance(jobs, list) and len(jobs) > 5
    jobs[5]["job_id"] = "five"
    body = _pretty(doc)
    with pytest.raises(DecodeError) as whole:
        adapter_for("v0.0.45").parse_jobs(body)
    with pytest.raises(DecodeError) as streamed:
        adapter_for("v0.0.45").parse_jobs_stream(pieces(body, (2000,)))
    assert "$.jobs[5].job_id" in str(whole.value)
    assert "$.jobs[5].job_id" in str(streamed.value)


@pytest.mark.parametrize("sizes", [(1 << 30,), (65536,)])
def test_warnings_after_a_large_array_are_not_taken_for_elements(sizes: tuple[int, ...]) -> None:
    """A 2 MB v0.0.45 /jobs answer followed by two warnings: the gap between the warnings
    looks like the gap between two jobs, and must not be taken for one (it was, and the
    answer failed with "trailing characters", even in one chunk)."""
    doc = _doc()
    jobs = doc["jobs"]
    assert isinstance(jobs, list)
    doc["jobs"] = jobs * (2_000_000 // len(_pretty(doc)) + 1)
    doc["warnings"] = [{"description": "first", "source": "a"},
                       {"description": "second", "source": "b"}]
    body = _pretty(doc)
    assert len(body) > 2_000_000
    streamed = adapter_for("v0.0.45").parse_jobs_stream(pieces(body, sizes))
    assert len(streamed.data) == len(doc["jobs"])
    assert streamed.warnings == ("first", "second")
    assert streamed.data[: len(jobs)] == adapter_for("v0.0.45").parse_jobs(_pretty(_doc())).data

"""Property tests over the adapter and collector layer (hypothesis).

* Any JSON value put in any field of a recorded answer (or the field removed): the
  adapter returns data or raises DecodeError/SlurmError, nothing else, and the
  collector, the exposition and Prometheus' parser never raise on what it returned.
* The streaming decoder of /jobs and /nodes, with any members before and after the
  array (warnings, errors, anything) and chunks cut at every byte, gives what a
  whole-body decode gives.
* Label values with quotes, backslashes, newlines and non-ASCII survive the
  exposition and parse back to the same string.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.api import decoding
from exporter.api.decoding import Envelope, decode, decode_array_stream
from exporter.api.errors import DecodeError, SlurmError
from exporter.api.versions import adapter_for
from exporter.collectors import COLLECTORS
from exporter.collectors.health import EndpointHealth, TokenHealth, collect_health
from exporter.cycle import render
from exporter.settings import Settings, load_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# one version of each shape: 22.05's first and last, 24.11's data_parser, 26.05's newest
CASES = [
    ("slurm-22.05", "v0.0.36"),
    ("slurm-22.05", "v0.0.38"),
    ("slurm-24.11", "v0.0.40"),
    ("slurm-24.11-gpus", "v0.0.42"),
    ("slurm-26.05", "v0.0.45"),
    ("slurm-26.05-gpus", "v0.0.45"),
]
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses",
             "slurmdbd")
# CI runs the same 60 examples every time (reproducible); FUZZ_EXAMPLES=2000 hunts longer,
# at random.
_HUNT = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_HUNT or 60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not _HUNT,
)

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**32 - 2, 2**32 - 1, 2**63, 2**64 - 1, 2**64, 10**30, 10**400])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1e308, 5e-324])
    | st.text(max_size=12)
    | st.sampled_from(["UNKNOWN_NEW_STATE", "", "RUNNING", "gpu:a100:2", "gres/gpu=1", "∞"])
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["set", "infinite", "number", "x", "state", "name"]) | st.text(max_size=5),
        inner,
        max_size=3,
    ),
    max_leaves=6,
)


@cache
def _doc(folder: str, version: str, endpoint: str) -> Any:
    path = FIXTURES / folder / f"{version}_{endpoint}.json"
    if endpoint == "slurmdbd":  # /slurmdb/vX/diag, recorded with slurmdbd
        path = FIXTURES / f"{folder}-slurmdbd" / f"slurmdb_{version}_diag.json"
    return json.loads(path.read_bytes()) if path.exists() else None


@cache
def _paths(folder: str, version: str, endpoint: str) -> list[tuple[Any, ...]]:
    """Every field of the document: dict keys and list indices, at every depth."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, here: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((*here, k))
                walk(v, (*here, k))
        elif isinstance(node, list):
            for i, v in enumerate(node[:3]):  # the first items are shaped like the rest
                out.append((*here, i))
                walk(v, (*here, i))

    walk(_doc(folder, version, endpoint), ())
    return out


def _copy(node: Any) -> Any:
    return json.loads(json.dumps(node))


def _mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    doc = _copy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if delete and isinstance(parent, dict):
        del parent[last]
    elif delete and isinstance(parent, list):
        parent.pop(last)
    else:
        parent[last] = value
    return doc


@cache
def _settings() -> Settings:
    # every optional family on: the most code under test
    return load_settings(["--auth", "none", "--nodes-per-node", "--jobs-per-user",
                          "--jobs-per-account"])


def _chunks(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def _collect_and_render(
    endpoint: str, body: bytes, version: str, cuts: list[int] | None = None
) -> str | None:
    """The adapter, the collector and the exposition; None when the adapter refused.

    Endpoints decoded as the body arrives (/jobs, /nodes) are also decoded from the body
    cut at `cuts` (or in 4 KiB pieces): the same outcome as the whole decode.
    """
    adapter = adapter_for(version)
    spec = COLLECTORS[endpoint]
    try:
        response = spec.parse(adapter, body)
    except (DecodeError, SlurmError) as e:
        response, whole_error = None, type(e)
    if spec.parse_stream is not None:
        pieces = _chunks(body, cuts) if cuts is not None else [
            body[i : i + 4096] for i in range(0, len(body), 4096)
        ]
        try:
            streamed = spec.parse_stream(adapter, iter(pieces))
        except (DecodeError, SlurmError) as e:
            assert response is None and type(e) is whole_error, (type(e), response)
        else:
            assert response is not None and streamed.data == response.data
    if response is None:
        return None
    # a join (reservations with /nodes): no node known, as when /nodes lists none
    data = response.data if spec.joins is None else (response.data, [])
    families = spec.collect(data, _settings(), 0.0)
    families += collect_health(
        {endpoint: EndpointHealth(True, 0.1, 1.0, {})},
        TokenHealth(None, {}),
        response.meta,
        "0",
        0.1,
        1.0,
    )
    text = render(families).decode("utf-8")
    list(text_string_to_metric_families(text))  # Prometheus' parser reads it back
    return text


def _available() -> list[tuple[str, str, str]]:
    return [(f, v, e) for f, v in CASES for e in ENDPOINTS if _doc(f, v, e) is not None]


@pytest.mark.parametrize(("folder", "version", "endpoint"), _available())
@FUZZ
@given(data=st.data())
def test_any_json_in_any_field_never_raises_out_of_adapter_or_collector(
    folder: str, version: str, endpoint: str, data: st.DataObject
) -> None:
    doc = _doc(folder, version, endpoint)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(folder, version, endpoint)), label="field")
        try:
            doc = _mutate(doc, path, data.draw(json_value, label="value"),
                          data.draw(st.booleans(), label="delete"))
        except (KeyError, IndexError, TypeError):
            break  # an earlier mutation removed this path's parent
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    indent = data.draw(st.sampled_from([None, 2]), label="indent")  # slurmrestd: 2
    body = json.dumps(doc, ensure_ascii=ascii_only, indent=indent).encode(
        "utf-8", "surrogatepass"
    )
    cuts = data.draw(st.lists(st.integers(0, 2**20), max_size=6), label="chunk cuts")
    _collect_and_render(endpoint, body, version, cuts)


def _replace_leaves(node: Any, leaf: Any, kinds: tuple[type, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _replace_leaves(v, leaf, kinds) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_leaves(v, leaf, kinds) for v in node]
    if isinstance(node, kinds) and not isinstance(node, bool):
        return leaf
    return node


@pytest.mark.parametrize(("folder", "version", "endpoint"), _available())
@pytest.mark.parametrize(
    ("kinds", "leaf"),
    [
        ((int, float), 10**400),  # beyond any float: float() of it raises OverflowError
        ((int, float), -(10**30)),
        ((int, float), 1e308),  # x 60 or x 1 MiB is inf
        ((int, float), None),
        ((int, float), "12"),
        ((str,), None),
        ((str,), 7),
        ((str,), "UNKNOWN_NEW_STATE"),
    ],
)
def test_every_field_at_once(
    folder: str, version: str, endpoint: str, kinds: tuple[type, ...], leaf: Any
) -> None:
    """Deterministic: one odd value in every field of its kind (the fuzzing above is
    random, so the cases it once found are pinned here)."""
    doc = _replace_leaves(_doc(folder, version, endpoint), leaf, kinds)
    _collect_and_render(endpoint, json.dumps(doc).encode(), version)


@FUZZ
@given(
    st.binary(max_size=200)
    | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))
)
def test_any_bytes_are_data_or_a_decode_or_slurm_error(body: bytes) -> None:
    for endpoint in ENDPOINTS:
        _collect_and_render(endpoint, body, "v0.0.45")
        _collect_and_render(endpoint, body, "v0.0.38")


# --- the streaming decoder -----------------------------------------------------------
class _Answer(Envelope, kw_only=True):
    jobs: list[Any] = msgspec.field(default_factory=list)
    meta: Any = None


_answer_decoder = msgspec.json.Decoder(_Answer)
_items_decoder = msgspec.json.Decoder(list[Any])

# what follows or precedes the array: slurmrestd's own members, with any content, and
# others; arrays of objects print the same gaps ("},\n    {") as the jobs between them
_objects = st.lists(st.dictionaries(st.text(max_size=4), json_value, max_size=3), max_size=3)
_warnings = st.lists(
    st.fixed_dictionaries({"description": st.text(max_size=8), "source": st.text(max_size=8)}),
    max_size=3,
)
_members = st.dictionaries(
    st.sampled_from(["warnings", "errors", "meta", "last_update", "nodes", "jobs "])
    | st.text(max_size=6),
    _warnings | _objects | json_value,
    max_size=4,
)
_elements = st.lists(
    st.dictionaries(st.text(max_size=4), json_value, max_size=4) | json_value, max_size=6
)


def _outcome(decode_it: Any, arg: Any) -> tuple[Any, ...]:
    """The decoded answer, or the kind of error (messages differ in byte offsets)."""
    try:
        answer, items = decode_it(arg)
    except (DecodeError, SlurmError) as e:
        return (type(e),)
    return (items, answer.errors and [bytes(e) for e in answer.errors], answer.warnings,
            answer.meta)


def _streamed(chunks: Iterable[bytes]) -> tuple[_Answer, list[Any]]:
    items: list[Any] = []
    answer = decode_array_stream(
        chunks, "jobs", _items_decoder, _answer_decoder, lambda a: a.jobs, items.extend, "x"
    )
    return answer, items


def _whole(body: bytes) -> tuple[_Answer, list[Any]]:
    answer = decode(_answer_decoder, body, "x")
    return answer, answer.jobs


@FUZZ
@given(before=_members, elements=_elements, after=_members, ascii_only=st.booleans(),
       cuts=st.lists(st.integers(0, 2**16), max_size=8))
def test_the_streaming_decoder_gives_the_whole_decode_whatever_the_members_and_chunks(
    before: dict[str, Any], elements: list[Any], after: dict[str, Any], ascii_only: bool,
    cuts: list[int],
) -> None:
    doc = {k: v for k, v in before.items() if k != "jobs"}
    doc["jobs"] = elements
    doc.update((k, v) for k, v in after.items() if k not in doc)
    body = json.dumps(doc, indent=2, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected = _outcome(_whole, body)
    assert _outcome(_streamed, [body]) == expected
    # a batch decoded at every chunk: at every byte, at each cut, at each single cut
    with mock.patch.object(decoding, "_BATCH", 1):
        assert _outcome(_streamed, (body[i : i + 1] for i in range(len(body)))) == expected
        assert _outcome(_streamed, _chunks(body, cuts)) == expected
        for k in range(len(body) + 1):
            assert _outcome(_streamed, [body[:k], body[k:]]) == expected, k


@pytest.mark.parametrize(
    ("folder", "version", "endpoint"),
    [("slurm-22.05", "v0.0.38", "jobs"), ("slurm-24.11", "v0.0.42", "nodes"),
     ("slurm-26.05", "v0.0.45", "jobs"), ("slurm-26.05", "v0.0.45", "nodes")],
)
@FUZZ
@given(warnings=_warnings, after=_members, cuts=st.lists(st.integers(0, 2**20), max_size=8))
def test_real_answers_with_warnings_and_more_after_the_array_stream_to_the_same_data(
    folder: str, version: str, endpoint: str, warnings: list[dict[str, str]],
    after: dict[str, Any], cuts: list[int],
) -> None:
    doc = _copy(_doc(folder, version, endpoint))
    doc["warnings"] = warnings
    doc.update((k, v) for k, v in after.items() if k not in doc)
    body = json.dumps(doc, indent=2).encode("utf-8", "surrogatepass")
    adapter = adapter_for(version)
    expected = getattr(adapter, f"parse_{endpoint}")(json.dumps(_doc(folder, version, endpoint),
                                                                 indent=2).encode())
    with mock.patch.object(decoding, "_BATCH", 1):
        streamed = getattr(adapter, f"parse_{endpoint}_stream")(iter(_chunks(body, cuts)))
    assert streamed.data == expected.data
    assert streamed.warnings == tuple(w["description"] for w in warnings if w["description"])


# --- label values -------------------------------------------------------------------
label_text = st.text(
    st.characters(blacklist_categories=("Cs",))
    | st.sampled_from(['"', "\\", "\n", "é", "漢", "🚀"]),
    min_size=1,
    max_size=20,
)


@FUZZ
@given(user=label_text, account=label_text, partition=label_text, cluster=label_text)
def test_label_values_survive_exposition_and_parse_back(
    user: str, account: str, partition: str, cluster: str
) -> None:
    doc = _copy(_doc("slurm-26.05", "v0.0.45", "jobs"))
    job = doc["jobs"][0]
    job["user_name"], job["account"], job["partition"] = user, account, partition
    doc["meta"]["slurm"]["cluster"] = cluster
    body = json.dumps(doc, ensure_ascii=False).encode()
    text = _collect_and_render("jobs", body, "v0.0.45")
    assert text is not None
    seen: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            for k, v in s.labels.items():
                seen.setdefault(k, set()).add(v)
    assert user in seen["user"]
    assert account in seen["account"]
    assert partition in seen["partition"]
    assert cluster in seen["cluster"]

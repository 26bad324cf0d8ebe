"""API version discovery on the /openapi/v3 documents of real slurmrestd."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.api.discovery import choose_version, served_versions
from exporter.api.errors import DecodeError
from exporter.api.versions import update_time_usable

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize(
    ("release", "served", "chosen"),
    [
        ("22.05", ["v0.0.36", "v0.0.37", "v0.0.38"], "v0.0.38"),
        ("24.11", ["v0.0.40", "v0.0.41", "v0.0.42"], "v0.0.42"),
        ("26.05", ["v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"], "v0.0.45"),
    ],
)
def test_served_and_chosen_versions(release: str, served: list[str], chosen: str) -> None:
    body = (FIXTURES / f"slurm-{release}" / "openapi_v3.json").read_bytes()
    assert served_versions(body) == served
    assert choose_version(served) == chosen


def test_an_unknown_newer_version_is_tried_with_the_newest_adapter() -> None:
    assert choose_version(["v0.0.44", "v0.0.45", "v0.0.46"]) == "v0.0.45"
    assert choose_version(["v0.0.46", "v0.0.47"]) == "v0.0.46"  # closest to what we know


def test_only_unknown_older_versions() -> None:
    assert choose_version(["v0.0.34", "v0.0.35"]) is None
    assert choose_version([]) is None


def test_not_an_openapi_document() -> None:
    with pytest.raises(DecodeError):
        served_versions(b"<html>proxy error</html>")


@pytest.mark.parametrize(
    ("endpoint", "release", "usable"),
    [
        ("nodes", "24.11.5", False),  # slurmrestd's nodes.c passes update_time to partitions
        ("nodes", "23.11.0", False),
        ("nodes", "25.11.7", False),
        ("nodes", "26.05.2", False),
        ("nodes", "26.05.3", True),  # fixed: "Fix HTTP 500 from get_nodes when update_time..."
        ("nodes", "26.05.5", True),
        ("nodes", "26.11.0", True),
        ("nodes", "", False),  # release unknown: the safe side
        ("nodes", "garbage", False),
        ("jobs", "24.11.5", True),
    ],
)
def test_update_time_usable(endpoint: str, release: str, usable: bool) -> None:
    assert update_time_usable(endpoint, release) is usable


def test_the_bare_error_auth_rule_names_exactly_the_2205_adapters_versions() -> None:
    """The client's copy of 22.05's versions (it may not import the adapters) is theirs."""
    from exporter.api import errors
    from exporter.api.v0036 import VERSIONS

    assert set(VERSIONS) == errors._BARE_ERROR_AUTH_VERSIONS

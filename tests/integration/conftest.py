"""Real Slurm clusters for the integration tests, one release at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab, lab_command, releases, start_lab


@pytest.fixture(scope="session", params=releases())
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh one-node cluster of one release with the job mix, quiesced."""
    release = str(request.param)
    started = start_lab(release)
    yield started
    lab_command("stop", "--release", release, check=False)

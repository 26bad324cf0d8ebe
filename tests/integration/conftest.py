"""Real Slurm clusters for the integration tests, one release at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab, lab_command, releases, start_lab


@pytest.fixture(scope="session", params=releases())
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh one-node cluster of one release with the job mix, quiesced.

    With fake typed GPUs (gpu:a100:2, gpu:h100:2) and GPU jobs of each request style,
    slurmdbd (so that gres/gpu is accounted in TRES), and slurmrestd also on a UNIX socket.
    """
    release = str(request.param)
    started = start_lab(release, "--gpus", "--with-slurmdbd", "--unix-socket")
    yield started
    lab_command("stop", "--release", release, check=False)

"""Real Slurm clusters for the integration tests, one release at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab, lab_command, releases, start_lab
from tests.integration.serving import Served, server_exporter


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


@pytest.fixture(scope="session")
def served(lab: Lab) -> Iterator[Served]:
    """A server-mode exporter (--interval 3) started once per lab and left running, for
    the conformance tests to compare its counts after several cycles with Slurm's own."""
    args = ["--slurmrestd-url", lab.url, "--jwt-key-file", lab.key, "--jwt-user", lab.user]
    with server_exporter(*args, interval=3) as server:
        yield Served(server, cycles=3)

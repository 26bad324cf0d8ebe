"""Real Slurm clusters for the integration tests, one release at a time."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import debianroot
from tests.integration.lab import Lab, lab_command, releases, start_lab
from tests.integration.serving import Served, server_exporter

NATIVE_METRICS_FROM = (25, 11)  # slurm.conf MetricsType (src/plugins/metrics/, 25.11+)


@pytest.fixture(scope="session", params=releases())
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh one-node cluster of one release with the job mix, quiesced.

    With fake typed GPUs (gpu:a100:2, gpu:h100:2) and GPU jobs of each request style,
    slurmdbd (so that gres/gpu is accounted in TRES), slurmrestd also on a UNIX socket,
    and two spare nodes without slurmd in their own partition, down from the start, for
    the tests of why nodes are out (test_nodes_out.py); from 25.11 on, slurmctld serves
    Slurm's own metrics too (MetricsType=metrics/openmetrics), as a site that scrapes both.
    """
    release = str(request.param)
    options = ["--gpus", "--with-slurmdbd", "--unix-socket", "--spare-nodes"]
    if tuple(int(x) for x in release.split(".")) >= NATIVE_METRICS_FROM:
        options.append("--native-metrics")
    started = start_lab(release, *options)
    yield started
    lab_command("stop", "--release", release, check=False)


@pytest.fixture(scope="session")
def served(lab: Lab) -> Iterator[Served]:
    """A server-mode exporter (--interval 3) started once per lab and left running, for
    the conformance tests to compare its counts after several cycles with Slurm's own."""
    args = ["--slurmrestd-url", lab.url, "--jwt-key-file", lab.key, "--jwt-user", lab.user]
    with server_exporter(*args, interval=3) as server:
        yield Served(server, cycles=3)


# ------------------------------------------------- a stock Debian 12, as an admin's machine
@pytest.fixture(scope="session")
def debian_root() -> Path:
    """The cached debootstrap root (python3, python3-venv, make, systemd): see debianroot.py."""
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, overlayfs, systemd-nspawn)")
    return debianroot.bookworm_root()


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This tree's wheel and its dependencies' (pip on the host: the root has no network)."""
    return debianroot.wheelhouse(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def installed_root(debian_root: Path, wheels: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An overlay of the Debian root where the README's Install commands ran, from a copy
    of this repository in /root/slurm-exporter, with Debian's python3."""
    with debianroot.overlay(debian_root, tmp_path_factory.mktemp("installed")) as root:
        src = root / "root" / "slurm-exporter"
        debianroot.copy_tree(src)
        shutil.copytree(wheels, root / "wheels")
        script = "set -e\n" + "\n".join(readme_install_commands())
        done = debianroot.in_root(root, script, cwd="/root/slurm-exporter", check=False,
                                  env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels"})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        root.joinpath("install.out").write_text(done.stdout)
        yield root


def readme_install_commands() -> list[str]:
    """The README's install block, less the apt-get line (its packages are in the root)."""
    block = readme_block("## Install")
    commands = [line.split("  #")[0].strip() for line in block.splitlines()]
    apt = [c for c in commands if c.startswith("apt-get install")]
    assert apt and set(apt[0].split()[2:]) <= set(debianroot.PACKAGES), apt
    return [c for c in commands if c and not c.startswith("apt-get")]


def readme_block(heading: str) -> str:
    """The first ```sh block after a README heading."""
    text = (debianroot.TOP / "README.md").read_text()
    after = text.split(f"\n{heading}\n", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_accounting_live.py ends every job of its lab: after pytest has grouped the
    tests by lab release, move it to the end of its release's group."""
    last = [i for i in items if i.nodeid.startswith("tests/integration/test_accounting_live.py")]
    if not last:
        return
    rest = [i for i in items if i not in last]
    for item in last:
        release = _lab_param(item)
        same = [n for n, i in enumerate(rest) if release and _lab_param(i) == release]
        rest.insert(same[-1] + 1 if same else len(rest), item)
    items[:] = rest


def _lab_param(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("lab") if callspec else None

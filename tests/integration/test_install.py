"""The README's install, as written, on a stock Debian 12 with Debian's own python3
(which refuses pip outside a virtual environment, PEP 668): the Install section's commands,
and the project venv that `make demo` and `make test` create (`make venv`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporter import __version__
from tests.integration import debianroot

OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels"}  # the root has no network


def test_readme_install_commands_work_with_debians_python(installed_root: Path) -> None:
    # the root's python3 is Debian's package, not a pip-friendly build
    python = debianroot.in_root(installed_root, "dpkg -S /usr/bin/python3.11 && python3 -V")
    assert "python3.11-minimal" in python.stdout and "Python 3.11" in python.stdout
    externally = debianroot.in_root(
        installed_root, "ls /usr/lib/python3.11/EXTERNALLY-MANAGED").returncode
    assert externally == 0  # PEP 668: a system-wide pip install would be refused
    # what the install printed, and the exporter it left where the unit looks for it
    assert (installed_root / "install.out").read_text().strip().endswith(
        f"slurm-exporter {__version__}")
    version = debianroot.in_root(installed_root, "/opt/slurm-exporter/bin/slurm-exporter --version",
                                 cwd="/tmp")
    assert version.stdout.strip() == f"slurm-exporter {__version__}"
    unit = (debianroot.TOP / "packaging" / "slurm-exporter.service").read_text()
    assert "ExecStart=/opt/slurm-exporter/bin/slurm-exporter\n" in unit


@pytest.fixture(scope="module")
def test_wheels(debian_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return debianroot.wheelhouse(tmp_path_factory.mktemp("test-wheels"), extras="[test]")


def test_make_venv_works_with_debians_python(debian_root: Path, test_wheels: Path,
                                             tmp_path: Path) -> None:
    """`make demo` and `make test` run Python from the project venv that `make venv`
    (scripts/ci-setup.sh) creates: with Debian's python3 and make, nothing else."""
    with debianroot.overlay(debian_root, tmp_path) as root:
        debianroot.copy_tree(root / "root" / "src")
        shutil.copytree(test_wheels, root / "wheels")
        made = debianroot.in_root(root, "make venv && .venv/bin/python -m pytest --version"
                                  " && .venv/bin/slurm-exporter --version", cwd="/root/src",
                                  env=OFFLINE, check=False)
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
        assert f"slurm-exporter {__version__}" in made.stdout
        assert "pytest" in made.stdout + made.stderr
        cfg = (root / "root" / "src" / ".venv" / "pyvenv.cfg").read_text()
        assert "home = /usr/bin" in cfg  # made by Debian's python3
        again = debianroot.in_root(root, "make -q venv", cwd="/root/src", check=False)
        assert again.returncode == 0  # up to date: `make test` does not reinstall each time

"""PrivateData=jobs (issue 9, item 6) on a cluster started with it: `check` says that the
exporter's user sees only its own jobs and what to do, and is satisfied once the user is
an Operator.

The session's lab of this release is stopped for it and started again afterwards with
the usual job mix (about 70 s in all), so this runs on 26.05 only, the newest release
(which also shows slurm.conf's PrivateData in /conf). What check compares, the jobs seen
with sdiag's counts, is the same on every release; tests/unit/test_check.py covers the rest.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.lab import TOP, Lab, lab_command, start_lab
from tests.integration.test_live import minted

OPTIONS = ("--gpus", "--with-slurmdbd", "--unix-socket", "--native-metrics")


@pytest.fixture
def private_lab(lab: Lab) -> Iterator[Lab]:
    if lab.release != "26.05":
        pytest.skip("run on 26.05 only (it restarts the session's lab)")
    lab_command("stop", "--release", lab.release)
    try:
        lab_command("start", "--release", lab.release, *OPTIONS, "--private-data", "jobs")
        yield lab
    finally:
        start_lab(lab.release, *OPTIONS)  # the session's lab as it was, for the next tests


def _check(lab: Lab) -> tuple[int, str]:
    p = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *minted(lab)],
        capture_output=True, text=True, cwd=TOP, timeout=60, check=False,
    )
    return p.returncode, p.stdout + p.stderr


def _until(lab: Lab, done: str) -> tuple[int, str]:
    """check, again until its output says `done` (sdiag recounts jobs every 30 s)."""
    deadline = time.monotonic() + 90
    while True:
        code, out = _check(lab)
        if done in out or time.monotonic() > deadline:
            return code, out
        time.sleep(2)


def test_check_says_what_to_do_when_private_data_hides_jobs(private_lab: Lab) -> None:
    lab = private_lab
    assert re.search(r"PrivateData\s*=\s*jobs", lab.slurm("scontrol", "show", "config"))
    for user in ("root", "alice"):
        lab.run("exec", "--user", user, "--", "sbatch", "-H", "-o", "/dev/null",
                "--wrap", "true")
    code, out = _until(lab, "[FAIL] private data")
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("[FAIL] private data"))
    assert f"user {lab.user!r} only its own jobs (0 pending or running)" in line, line
    assert f"sacctmgr modify user {lab.user} set adminlevel=operator" in line, line
    # PrivateData also closes slurmctld's own metrics to requests without a JWT (26.05:
    # src/common/read_config.c:4880-4898): Prometheus would need one
    native = next(x for x in out.splitlines() if "native metrics:" in x)
    assert native.startswith("[warn]") and "HTTP 401" in native, native
    # the fix it gives works: an Operator sees every job
    lab.slurm("sacctmgr", "-i", "modify", "user", lab.user, "set", "adminlevel=operator")
    code, out = _until(lab, "all checks passed")
    assert code == 0 and "private data" not in out, out

"""The systemd unit, for real: packaging/slurm-exporter.service as shipped (only
/etc/default/slurm-exporter written, as the README says) under systemd 252 as PID 1 in a
stock Debian 12 (systemd-nspawn --boot; the container shares the host's network), reading
a real slurmrestd of the lab in server mode. Its sandbox (system call filter, dynamic user,
credentials, read-only system) must leave the exporter and its collection process alive
and at work: a unit that kills or starves them fails here."""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.integration import debianroot
from tests.integration.lab import Lab, releases

UNIT = debianroot.TOP / "packaging" / "slurm-exporter.service"
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")
pytestmark = pytest.mark.lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_cycles(url: str, n: int, timeout: float) -> str:
    """/metrics once n distinct collection timestamps have been seen (n cycles served)."""
    seen: set[str] = set()
    page = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < n:
        try:
            page = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            page = ""
        seen |= set(re.findall(r"^slurm_exporter_collection_timestamp_seconds (\S+)$", page,
                               re.M))
        time.sleep(0.5)  # polling the page: the cycle's end is not observable otherwise
    assert len(seen) >= n, f"{len(seen)} cycles in {timeout} s; last page:\n{page[-2000:]}"
    return page


# one release is enough: the unit's sandbox does not depend on Slurm's version; the one
# test_dashboards.py takes, so that the session's lab of that release serves both
RELEASE = next((r for r in ("26.05", "24.11", "22.05") if r in releases()), releases()[0])


@pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
def test_the_unit_serves_every_endpoint_under_systemd(lab: Lab, installed_root: Path,
                                                      tmp_path: Path) -> None:
    root = installed_root
    shutil.copy(UNIT, root / "etc/systemd/system/slurm-exporter.service")
    # LoadCredential=jwt_key:/etc/slurm/jwt_hs256.key: the cluster's key, 0600 root here
    (root / "etc/slurm").mkdir(exist_ok=True)
    key = root / "etc/slurm/jwt_hs256.key"
    shutil.copy(lab.key, key)
    key.chmod(0o600)
    port = free_port()
    (root / "etc/default/slurm-exporter").write_text(
        f"SLURM_EXPORTER_SLURMRESTD_URL={lab.url}\n"
        f"SLURM_EXPORTER_JWT_USER={lab.user}\n"
        f"SLURM_EXPORTER_LISTEN_ADDRESS=127.0.0.1:{port}\n"
        "SLURM_EXPORTER_INTERVAL=1\n")
    box = debianroot.Booted(root, tmp_path / "nspawn.log")
    try:
        box.run("systemctl", "enable", "--now", "slurm-exporter")
        page = wait_for_cycles(f"http://127.0.0.1:{port}/metrics", 4, timeout=60)
        for endpoint in ENDPOINTS:
            assert f'slurm_exporter_endpoint_up{{endpoint="{endpoint}"}} 1.0' in page, endpoint
        assert re.search(r"^slurm_jobs_by_state\{", page, re.M)  # Slurm's data, not only health
        show = box.run("systemctl", "show", "slurm-exporter",
                       "-p", "ActiveState,NRestarts,MainPID,User").stdout
        assert "ActiveState=active" in show and "NRestarts=0" in show, show
        journal = box.run("journalctl", "-u", "slurm-exporter", "--no-pager").stdout
        assert "collection process exited" not in journal, journal[-3000:]
        # the collection process runs at the low priority it asked for (os.nice(10))
        main = re.search(r"MainPID=(\d+)", show)
        assert main
        children = box.run("sh", "-c", f"cat /proc/{main.group(1)}/task/*/children").stdout
        nice = [box.run("cut", "-d", " ", "-f", "19", f"/proc/{c}/stat").stdout.strip()
                for c in children.split()]
        assert nice == ["10"], (children, nice)
    except BaseException:
        print(box.run("journalctl", "-u", "slurm-exporter", "--no-pager", check=False).stdout)
        raise
    finally:
        box.stop()

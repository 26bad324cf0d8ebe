"""`make demo` as a user meets it: any signal stops everything it started (a closed SSH
session: SIGHUP to the terminal's process group, or SIGTERM to make alone, which make passes
on), and it fails loudly when the exporter cannot start.

Each demo runs on an overlay of the lab's cached chroot, in a cache directory and on ports
of its own, so the session's lab (the `lab` fixture) is left alone."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration import debianroot
from tests.integration.lab import Lab, releases

pytestmark = pytest.mark.lab
# the release test_dashboards.py and test_service.py take: one session lab for all three
RELEASE = next((r for r in ("26.05", "24.11", "22.05") if r in releases()), releases()[0])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """P with P, P+7 and P+8 free (slurmrestd, slurmctld, slurmd: slurmlab.sh --port)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base < 65000 and all(_free(base + d) for d in (7, 8)):
            return base
    raise RuntimeError("no free ports")


@dataclass
class Demo:
    env: dict[str, str]
    listen: str
    cache: Path

    @property
    def pids_file(self) -> Path:
        return Path(f"/run/slurm-exporter-demo-{self.env['SLURMLAB_PORT']}.pids")

    def make(self, *args: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(["make", "--no-print-directory", *args], cwd=debianroot.TOP,
                                env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, **kw)  # type: ignore[call-overload]

    def lab_running(self) -> bool:
        return subprocess.run(["bash", str(debianroot.TOP / "scripts/slurmlab.sh"), "status",
                               "--release", RELEASE], env=self.env, capture_output=True,
                              check=False).returncode == 0


@pytest.fixture
def demo(lab: Lab, tmp_path: Path) -> Iterator[Demo]:
    """A private copy of the release's cached chroot (overlay), ports and an exporter
    command running this tree (as the .venv's would)."""
    lower = Path(lab.env["SLURMLAB_CHROOT"])
    cache = tmp_path / "cache"
    with debianroot.overlay(lower, tmp_path / "ovl") as root:
        cache.mkdir()
        (cache / RELEASE).symlink_to(root)  # slurmlab.sh: $SLURMLAB_CACHE/<release>
        wrapper = tmp_path / "slurm-exporter"
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={debianroot.TOP} exec {sys.executable} '
                           '-m exporter "$@"\n')
        wrapper.chmod(0o755)
        env = {**os.environ, "SLURMLAB_CACHE": str(cache),
               "SLURMLAB_PORT": str(free_base_port()), "DEMO_EXPORTER": str(wrapper)}
        port = free_base_port()
        d = Demo(env, f"127.0.0.1:{port}", cache)
        try:
            yield d
        finally:
            subprocess.run(["bash", str(debianroot.TOP / "scripts/slurmlab.sh"), "stop",
                            "--release", RELEASE], env=env, capture_output=True, check=False)


def exporter_processes(listen: str) -> list[int]:
    """The demo's processes (make, demo.sh and the exporter name the listen address in
    their command lines) and their children (the collection process, the job stream)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if listen in proc.joinpath("cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    kids = []
    for pid in found:
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            kids += [int(c) for c in task.read_text(errors="replace").split()]
    return sorted(set(found + kids))


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_serving(demo: Demo, make: subprocess.Popen[str]) -> list[int]:
    deadline = time.monotonic() + 300  # a cold chroot is built within the overlay
    while time.monotonic() < deadline:
        assert make.poll() is None, make.stdout.read() if make.stdout else ""
        try:
            if "slurm_exporter_endpoint_up" in httpx.get(f"http://{demo.listen}/metrics",
                                                         timeout=2).text:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling: the demo's start has no other signal
    procs = exporter_processes(demo.listen)
    assert len(procs) >= 2, procs  # the exporter and its collection process
    return procs


def assert_all_stopped(demo: Demo, make: subprocess.Popen[str], procs: list[int]) -> None:
    make.wait(60)
    stream = [int(p) for p in demo.pids_file.read_text().split()[1:]] \
        if demo.pids_file.exists() else []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in procs + stream):
        time.sleep(0.2)  # polling: the processes' ends
    assert not [p for p in procs if alive(p)], "the exporter or its collection process survived"
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", int(demo.listen.rsplit(":", 1)[1])), 5).close()
    assert not demo.lab_running()
    assert not demo.pids_file.exists()
    again = demo.make("demo-stop")
    assert "no demo is running" in again.communicate(timeout=60)[0]


@pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
def test_sigterm_to_make_stops_everything(demo: Demo) -> None:
    make = demo.make("demo", f"DEMO_ARGS=--release {RELEASE} --listen-address {demo.listen}")
    procs = wait_until_serving(demo, make)
    make.send_signal(signal.SIGTERM)  # make alone; GNU make passes SIGTERM to its recipe
    assert_all_stopped(demo, make, procs)
    assert make.returncode != 0


@pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
def test_sighup_to_the_session_stops_everything(demo: Demo) -> None:
    make = demo.make("demo", f"DEMO_ARGS=--release {RELEASE} --listen-address {demo.listen}",
                     start_new_session=True)
    procs = wait_until_serving(demo, make)
    os.killpg(make.pid, signal.SIGHUP)  # the terminal went away: its whole process group
    assert_all_stopped(demo, make, procs)


@pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
def test_an_exporter_that_cannot_start_fails_the_demo(demo: Demo) -> None:
    # a bad listen address: the exporter exits 2 at start, after the cluster came up
    make = demo.make("demo", f"DEMO_ARGS=--release {RELEASE} --listen-address 127.0.0.1:99999")
    out = make.communicate(timeout=300)[0]
    assert make.returncode != 0, out
    assert "the exporter exited with status 2" in out, out
    assert not demo.lab_running() and not demo.pids_file.exists()


@pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
def test_a_taken_address_fails_before_the_cluster_starts(demo: Demo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        make = demo.make("demo", f"DEMO_ARGS=--release {RELEASE} --listen-address {listen}")
        out = make.communicate(timeout=60)[0]
    assert make.returncode != 0, out
    assert re.search(rf"{listen} is in use .*make demo-stop", out), out
    assert not demo.lab_running()

"""A stock Debian 12 root file system for the tests that install the exporter as an admin
would: the README's install commands with Debian's own python3, the systemd unit under a
real systemd (systemd-nspawn --boot), the container image's layout (tests/integration/
test_install.py, test_service.py).

The root is built once with debootstrap (about 50 s, 300 MB) and cached beside the Slurm
lab's chroots ($SLURMLAB_CACHE/bookworm-systemd); every test works on an overlay of it, so
the cache is never changed. Python packages come from a wheel house built on the host
(pip), so nothing inside the root needs the network.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SLURMLAB_CACHE", "/var/cache/slurm-exporter-lab"))
SUITE = "bookworm"
# systemd as PID 1 for systemd-nspawn --boot; python3, python3-venv and make: what the
# README asks of a Debian 12 machine (nothing else: no pip, no compilers)
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "make")
PATH_IN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(*cmd: str | Path, timeout: float = 600, check: bool = True,
        **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc  # type: ignore[no-any-return]


def _mirror() -> str:
    # the lab's rule (scripts/slurmlab.sh debian_mirror), without the host's sources lookup
    return os.environ.get("SLURMLAB_MIRROR", "http://deb.debian.org/debian").rstrip("/")


def bookworm_root() -> Path:
    """The cached Debian 12 root, built on first use (debootstrap, needs the Debian mirror)."""
    root = CACHE / f"{SUITE}-systemd"
    done = root / ".slurm-exporter-root"
    if done.exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{SUITE}-systemd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building it
        if done.exists():
            return root
        if shutil.which("debootstrap") is None:
            run("apt-get", "install", "-y", "-qq", "debootstrap", "debian-archive-keyring")
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg", SUITE, partial,
            _mirror(), timeout=900)
        (partial / done.name).touch()
        shutil.rmtree(root, ignore_errors=True)  # one left half-made by hand
        partial.rename(root)
    return root


@contextlib.contextmanager
def overlay(lower: Path, tmp: Path) -> Iterator[Path]:
    """A writable copy of `lower` (overlayfs: the cache itself is never written)."""
    upper, work, merged = tmp / "upper", tmp / "work", tmp / "root"
    for d in (upper, work, merged):
        d.mkdir(parents=True)
    run("mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={lower},upperdir={upper},workdir={work}", merged)
    try:
        yield merged
    finally:
        run("umount", "--lazy", merged, check=False)


def in_root(root: Path, script: str, *, user: str | None = None, cwd: str = "/",
            env: dict[str, str] | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """`sh -c script` chrooted in root, with a clean environment and its own /proc
    (a PID namespace: nothing started inside outlives the call)."""
    clean = {"PATH": PATH_IN, "HOME": "/root" if user is None else "/nonexistent",
             "LANG": "C.UTF-8", **(env or {})}
    spec = [] if user is None else [f"--userspec={user}"]
    inner = ["chroot", *spec, str(root), "/usr/bin/env", "-i", f"--chdir={cwd}",
             *(f"{k}={v}" for k, v in clean.items()), "/bin/sh", "-c", script]
    return run("unshare", "--mount", "--pid", "--fork", "--propagation", "private",
               "sh", "-c", 'mount -t proc proc "$0/proc" && exec "$@"', root, *inner,
               timeout=timeout, check=check)


def wheelhouse(dest: Path, extras: str = "") -> Path:
    """This tree's wheel and every wheel it needs (and pip's build backend, so that
    `pip install .` works offline), for Python 3.11 on this platform."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    run(*pip, "wheel", "--no-deps", "-q", "-w", dest, TOP)
    wheel = next(dest.glob("slurm_exporter-*.whl"))
    run(*pip, "download", "-q", "--only-binary=:all:", "--python-version", "3.11",
        "-d", dest, f"{wheel}{extras}", "setuptools>=68", "wheel")
    return dest


def copy_tree(dest: Path) -> None:
    """This repository's files as a clone has them (git ls-files), without .venv etc."""
    files = run("git", "ls-files", "-z", cwd=TOP).stdout.split("\0")
    for name in filter(None, files):
        src = TOP / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


class Booted:
    """systemd as PID 1 in `root` (systemd-nspawn --boot), sharing the host's network."""

    def __init__(self, root: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit",
             f"--machine=se-{os.getpid()}", "--console=passive"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._boot()
        except BaseException:
            self.stop()
            raise

    def _boot(self) -> None:
        self.init = self._init_pid()
        deadline = time.monotonic() + 120
        state = self.run("systemctl", "is-system-running", "--wait", check=False)
        # systemctl cannot talk to systemd until it has set up its private socket
        while not state.stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.2)  # polling: the socket's creation is not observable from here
            state = self.run("systemctl", "is-system-running", "--wait", check=False)
        if state.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"the container did not boot: {state.stdout}{state.stderr}\n"
                               f"{self.tail()}")

    def _init_pid(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited ({self.proc.returncode}):\n{self.tail()}")
            for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
                for pid in task.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.1)  # polling for the container's init to appear
        raise RuntimeError(f"no systemd in the container after 60 s:\n{self.tail()}")

    def run(self, *cmd: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        return run("nsenter", "-t", str(self.init), "-a", "/usr/bin/env", "-i",
                   f"PATH={PATH_IN}", *cmd, check=check, timeout=timeout)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: an orderly poweroff of the container
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

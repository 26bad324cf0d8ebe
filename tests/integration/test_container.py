"""The container image without a Docker engine: a root file system assembled the way the
Dockerfile says (its instructions interpreted in order on a stock Debian 12 root, which
stands in for python:3.11-slim-bookworm: same Debian, same Python 3.11), then the image's
ENTRYPOINT run as PID 1 of its own PID namespace with the image's USER (UID 9341) and the
README's key copy mounted read-only, and the image's HEALTHCHECK command run beside it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakerestd import FakeSlurmrestd
from tests.integration import debianroot
from tests.integration.conftest import readme_block

TOP = debianroot.TOP
KEY = b"container-test-key-0123456789abcdef"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the image's
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/tmp/wheelhouse"}


@dataclass
class Stage:
    root: Path
    env: dict[str, str] = field(default_factory=lambda: {"PATH": BASE_PATH})
    workdir: str = "/"
    user: str = "0:0"
    entrypoint: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def instructions() -> list[tuple[str, str]]:
    text = (TOP / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def build(base: Path, tmp: Path, wheels: Path, stack: ExitStack) -> Stage:
    """Every stage of the Dockerfile, in order; the last one is the image."""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for n, (word, rest) in enumerate(instructions()):
        if word == "ARG":  # what the Debian root stands in for
            assert rest == "PYTHON_IMAGE=python:3.11-slim-bookworm", rest
            continue
        if word in ("LABEL", "EXPOSE"):
            continue
        if word == "FROM":
            assert rest.split()[0] == "${PYTHON_IMAGE}"  # python:3.11-slim-bookworm
            stage = Stage(stack.enter_context(debianroot.overlay(base, tmp / f"stage{n}")))
            # the image's `python`, with pip: Debian's python3 has no pip outside a venv
            debianroot.in_root(stage.root, "python3 -m venv /usr/local/lib/image-python")
            python = stage.root / "usr/local/bin/python"
            python.write_text('#!/bin/sh\nexec /usr/local/lib/image-python/bin/python "$@"\n')
            python.chmod(0o755)
            shutil.copytree(wheels, stage.root / "tmp/wheelhouse")
            if " AS " in rest:
                stages[rest.split(" AS ")[1].strip()] = stage
            continue
        assert stage is not None, word
        if word == "ENV":
            for k, v in (a.split("=", 1) for a in shlex.split(rest)):
                stage.env[k] = v.replace("$PATH", stage.env["PATH"])
        elif word == "WORKDIR":
            stage.workdir = rest
            (stage.root / rest.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif word == "COPY" and rest.startswith("--from="):
            name, src, dest = rest.removeprefix("--from=").split()
            shutil.copytree(stages[name].root / src.lstrip("/"), stage.root / dest.lstrip("/"),
                            symlinks=True)
        elif word == "COPY":
            *srcs, dest = rest.split()
            target = stage.root / os.path.join(stage.workdir, dest).lstrip("/")
            for src in srcs:
                into = target / src if dest.endswith("/") else target
                if (TOP / src).is_dir():
                    shutil.copytree(TOP / src, into, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(TOP / src, into)
        elif word == "RUN":
            debianroot.in_root(stage.root, rest, cwd=stage.workdir,
                               env={**stage.env, **OFFLINE})
        elif word == "USER":
            stage.user = rest
        elif word == "ENTRYPOINT":
            stage.entrypoint = json.loads(rest)
        elif word == "HEALTHCHECK":
            stage.healthcheck = json.loads(rest.split(" CMD ", 1)[1])
    assert stage is not None
    return stage


@pytest.fixture(scope="module")
def image(debian_root: Path, wheels: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with ExitStack() as stack:
        yield build(debian_root, tmp_path_factory.mktemp("image"), wheels, stack)


def readme_key_copy(tmp: Path) -> Path:
    """The README's `install ... jwt_key` line, run with paths under tmp."""
    line = next(x for x in readme_block("## Running as a service / container").splitlines()
                if x.startswith("install "))
    key = tmp / "jwt_hs256.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    dest = tmp / "etc/slurm-exporter/jwt_key"  # etc/slurm-exporter/ does not exist yet
    cmd = line.replace("/etc/slurm/jwt_hs256.key", str(key)).replace(
        "/etc/slurm-exporter/jwt_key", str(dest))
    subprocess.run(cmd, shell=True, check=True)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_cycle(port: int, box: subprocess.Popen[str]) -> str:
    """/metrics once the first cycle has ended (or "" if the exporter exits or 30 s pass)."""
    page = ""
    for _ in range(300):
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            page = ""
        if 'slurm_exporter_endpoint_up{endpoint="jobs"}' in page or box.poll() is not None:
            break
        time.sleep(0.1)  # polling: the first cycle's end (or the exporter's exit)
    return page


def test_the_image_runs_and_its_health_check_follows_the_listen_address(
        image: Stage, tmp_path: Path) -> None:
    key = readme_key_copy(tmp_path)
    port = free_port()  # not 9341: the health check must follow the flag
    user = image.user  # USER 9341:9341
    env = [f"{k}={v}" for k, v in {**image.env, "HOME": "/nonexistent"}.items()]
    inside = ["chroot", f"--userspec={user}", str(image.root), "/usr/bin/env", "-i", *env]
    (image.root / "run/secrets").mkdir(parents=True, exist_ok=True)
    (image.root / "run/secrets/jwt_key").touch()
    with FakeSlurmrestd(key=KEY) as srv:
        args = ["--slurmrestd-url", srv.url, "--jwt-key-file", "/run/secrets/jwt_key",
                "--jwt-user", "exporter", "--listen-address", f":{port}"]
        # PID 1 of a PID namespace, like a container's entrypoint; the key bind-mounted :ro
        mounts = ('mount -t proc proc "$0/proc" && mount --bind -o ro "$1" '
                  '"$0/run/secrets/jwt_key" && shift && exec "$@"')
        box = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
             "sh", "-c", mounts, str(image.root), str(key), *inside, *image.entrypoint, *args],
            stderr=subprocess.PIPE, text=True)
        pid1 = 0
        try:
            page = _first_cycle(port, box)
            assert 'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' in page, page[-2000:]
            pid1 = int(Path(f"/proc/{box.pid}/task/{box.pid}/children").read_text().split()[0])
            status = Path(f"/proc/{pid1}/status").read_text()
            assert re.search(r"^Uid:\s+9341\s", status, re.M), status  # the image's USER
            # the HEALTHCHECK command, in the container (its PID namespace, its user)
            health = debianroot.run("nsenter", "-t", str(pid1), "-p", "-m", *inside,
                                    *image.healthcheck, check=False)
            assert health.returncode == 0, health.stdout + health.stderr
            assert health.stdout.strip() == (
                f"healthy: http://127.0.0.1:{port}/-/healthy answered 200")
        finally:
            # `docker stop`: SIGTERM to the entrypoint (a PID 1 ignores what it does not handle)
            os.kill(pid1 or box.pid, signal.SIGTERM)
            _, err = box.communicate(timeout=30)
    assert box.returncode == 0, err  # a clean stop
    assert "Traceback" not in err, err


def test_the_image_runs_as_the_helm_chart_deploys_it(image: Stage, tmp_path: Path) -> None:
    """The pod of packaging/helm/slurm-exporter without Kubernetes: the chart's arguments and
    config file (its ConfigMap, mounted read-only), the image's root file system read-only,
    the user and groups of the pod's securityContext, the key file as a Secret volume lays
    it out (root:fsGroup, defaultMode | 0440: pkg/volume/volume_linux.go changeFilePermission)
    mounted read-only, and the probes' path answering on the chart's port."""
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not installed (scripts/install-helm.sh)")
    port = free_port()
    with FakeSlurmrestd(key=KEY) as srv:
        values = f"slurmrestdUrl={srv.url},jwtUser=exporter,jwtKey.existingSecret=k,port={port}"
        out = debianroot.run(helm, "template", "rel", str(TOP / "packaging/helm/slurm-exporter"),
                             "--set", values).stdout
        docs = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        ctx = pod["securityContext"]
        files = {}  # mount path -> the folder Kubernetes would mount there
        for volume in pod["volumes"]:
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            assert mount["readOnly"] is True
            folder = tmp_path / volume["name"]
            folder.mkdir()
            if "configMap" in volume:
                for name, text in docs["ConfigMap"]["data"].items():
                    (folder / name).write_text(text)
            else:
                (item,) = volume["secret"]["items"]
                key = folder / item["path"]
                key.write_bytes(KEY)
                os.chown(key, 0, ctx["fsGroup"])
                key.chmod(volume["secret"]["defaultMode"] | 0o440)
            files[mount["mountPath"]] = folder
            (image.root / mount["mountPath"].lstrip("/")).mkdir(parents=True, exist_ok=True)
        user = f"--userspec={ctx['runAsUser']}:{ctx['runAsGroup']}"
        env = [f"{k}={v}" for k, v in {**image.env, "HOME": "/nonexistent"}.items()]
        inside = ["chroot", user, f"--groups={ctx['fsGroup']}", str(image.root),
                  "/usr/bin/env", "-i", *env]
        # the volumes, then the root made read-only (readOnlyRootFilesystem), then /proc
        binds = " && ".join(f'mount --bind -o ro {shlex.quote(str(folder))} "$0{where}"'
                            for where, folder in files.items())
        script = (f'mount --bind "$0" "$0" && {binds} && mount -o remount,bind,ro "$0" && '
                  'mount -t proc proc "$0/proc" && exec "$@"')
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        box = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
             "sh", "-c", script, str(image.root), *inside, *image.entrypoint, *container["args"]],
            stderr=subprocess.PIPE, text=True)
        pid1 = 0
        try:
            page = _first_cycle(port, box)
            assert box.poll() is None, box.communicate()[1]
            assert 'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' in page, page[-2000:]
            pid1 = int(Path(f"/proc/{box.pid}/task/{box.pid}/children").read_text().split()[0])
            status = Path(f"/proc/{pid1}/status").read_text()
            assert re.search(r"^Uid:\s+9341\s", status, re.M), status
            for probe in (container["livenessProbe"], container["readinessProbe"]):
                (port_of,) = [p for p in container["ports"]
                              if p["name"] == probe["httpGet"]["port"]]
                url = f"http://127.0.0.1:{port_of['containerPort']}{probe['httpGet']['path']}"
                assert httpx.get(url, timeout=5).status_code == 200, url
        finally:
            os.kill(pid1 or box.pid, signal.SIGTERM)  # what the kubelet sends first
            _, err = box.communicate(timeout=30)
    assert box.returncode == 0, err
    assert "Traceback" not in err, err

"""Driving scripts/slurmlab.sh from the tests, and reading Slurm's own commands."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
LAB = TOP / "scripts" / "slurmlab.sh"
# sinfo appends one of these to a state: * not responding, ~ powered off, # powering up, ...
_SINFO_SUFFIX = re.compile(r"[*~#!%$@^\-]+$")


@dataclass(frozen=True)
class Lab:
    release: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.env["SLURMRESTD_URL"]

    @property
    def key(self) -> str:
        return self.env["SLURM_JWT_KEY"]

    @property
    def user(self) -> str:
        return self.env["SLURM_JWT_USER"]

    def run(self, *args: str, check: bool = True) -> str:
        # options before `--`: after it everything belongs to the command run in the cluster
        return lab_command(args[0], "--release", self.release, *args[1:], check=check)

    def slurm(self, *cmd: str) -> str:
        """A Slurm command run inside the cluster (squeue, sinfo, scontrol, sbatch...)."""
        return self.run("exec", "--", *cmd)

    def token(self, lifespan: int = 3600) -> str:
        return self.run("token", "--lifespan", str(lifespan)).strip()

    def sinfo_states(self) -> Counter[str]:
        """Nodes by state as sinfo prints them, each node once."""
        seen: dict[str, str] = {}
        for line in self.slurm("sinfo", "-h", "-N", "-o", "%N %T").splitlines():
            node, state = line.split()
            seen[node] = _SINFO_SUFFIX.sub("", state)
        return Counter(seen.values())

    def squeue_counts(self) -> Counter[tuple[str, str]]:
        """Jobs by (state, partition) as squeue prints them, every state."""
        out = self.slurm("squeue", "-h", "-t", "all", "-o", "%T|%P")
        return Counter(
            (state.lower(), part)
            for state, part in (line.split("|") for line in out.splitlines())
        )

    def scontrol_node_cpus(self) -> tuple[int, int]:
        """(CPUTot, CPUAlloc) summed over nodes, from scontrol show node."""
        out = self.slurm("scontrol", "-o", "show", "node")
        total = sum(int(m) for m in re.findall(r"CPUTot=(\d+)", out))
        alloc = sum(int(m) for m in re.findall(r"CPUAlloc=(\d+)", out))
        return total, alloc


def lab_command(*args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["bash", str(LAB), *args], capture_output=True, text=True, timeout=900, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"slurmlab.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def start_lab(release: str, *options: str) -> Lab:
    """A fresh cluster of this release (a running one is stopped first), with the job mix."""
    lab_command("stop", "--release", release, check=False)
    out = lab_command("start", "--release", release, *options)
    env = dict(
        line.split("=", 1) for line in out.splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    lab = Lab(release, env)
    submit = ["submit", "--gpus"] if "--gpus" in options else ["submit"]
    lab.run(*submit)
    return lab


def releases() -> list[str]:
    """The releases to test: $SLURMLAB_RELEASES (space separated) or all three."""
    return os.environ.get("SLURMLAB_RELEASES", "26.05 24.11 22.05").split()

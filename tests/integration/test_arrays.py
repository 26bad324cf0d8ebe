"""A pending job array of 1000 tasks against Slurm's own counts: plain squeue's lines,
squeue -r's tasks and their CPUs, and sdiag's Jobs pending.

The array is held (`sbatch -H`), so it pends without taking the node from the job mix the
other tests of the session count, and it is cancelled at the end. One task is split off it
(`scontrol update` of that task alone), which squeue shows on the array's line again.
"""

from __future__ import annotations

import re
import time
from collections import Counter

from tests.integration.lab import Lab
from tests.integration.test_live import Samples, by, minted, run_exporter

NAME = "array_probe"
TASKS = 1000  # MaxArraySize of the lab is 1001
CPUS, MEM_MIB = 2, 10


def _scrape(lab: Lab) -> Samples:
    code, samples, stderr = run_exporter("--once", *minted(lab))
    assert code == 0, stderr
    return samples


def _total(samples: Samples, name: str, **match: str) -> int:
    return sum(
        int(v)
        for labels, v in samples.get(name, [])
        if all(labels.get(k) == want for k, want in match.items())
    )


def _sdiag_pending(lab: Lab) -> int:
    found = re.search(r"Jobs pending:\s+(\d+)", lab.slurm("sdiag"))
    assert found, "sdiag prints no 'Jobs pending'"
    return int(found.group(1))


def _squeue_r_pending(lab: Lab) -> tuple[int, int, int]:
    """(tasks, CPUs, memory in MiB) of every pending task as squeue -r lists them."""
    out = lab.slurm("squeue", "-r", "-h", "-t", "pending", "-o", "%C|%m")
    tasks = cpus = mem = 0
    for line in out.splitlines():
        c, m = line.split("|")
        tasks, cpus = tasks + 1, cpus + int(c)
        mem += int(float(m[:-1]) * {"M": 1, "G": 1024, "T": 1 << 20}[m[-1]])
    return tasks, cpus, mem


def _settled(lab: Lab, expected_tasks: int) -> Samples:
    """A scrape once slurmctld's own count (sdiag, refreshed periodically) sees the array."""
    deadline = time.monotonic() + 90
    while True:
        samples = _scrape(lab)
        if _total(samples, "slurm_scheduler_jobs_pending") == expected_tasks:
            return samples
        assert time.monotonic() < deadline, "sdiag's Jobs pending never counted the array"
        time.sleep(2)


def test_a_pending_array_of_1000_tasks_counts_as_squeue_and_sdiag_count(lab: Lab) -> None:
    before = _scrape(lab)
    tasks_before, cpus_before, mem_before = _squeue_r_pending(lab)
    job_id = lab.slurm(
        "sbatch", "-H", "--parsable", "-J", NAME, "-c", str(CPUS), f"--mem={MEM_MIB}M",
        "--gres=gpu:a100:1", f"--array=1-{TASKS}%10", "-o", "/dev/null", "--wrap", "true",
    ).strip().split(";")[0]
    try:
        # task 5 becomes a record of its own (same name and partition: squeue merges it)
        lab.slurm("scontrol", "update", f"jobid={job_id}_5", "timelimit=10")
        tasks, cpus, mem = _squeue_r_pending(lab)
        assert tasks - tasks_before == TASKS
        after = _settled(lab, tasks)

        # job counts: plain squeue's lines, the array (and its split-off task 5) once
        assert by(after, "slurm_jobs_by_state", "state", "partition") == lab.squeue_counts()
        lines = lab.slurm("squeue", "-h", "-t", "pending", "-n", NAME, "-o", "%i").split()
        assert len(lines) == 1 and lines[0].startswith(f"{job_id}_[1-{TASKS}"), lines
        # tasks: sdiag and squeue -r, every task of the array
        pending_tasks = _total(after, "slurm_jobs_pending_tasks")
        assert pending_tasks == _sdiag_pending(lab) == tasks
        assert pending_tasks - _total(before, "slurm_jobs_pending_tasks") == TASKS
        held = by(after, "slurm_jobs_pending_tasks", "reason")[("JobHeldUser",)]
        assert held - by(before, "slurm_jobs_pending_tasks", "reason")[("JobHeldUser",)] == TASKS
        # demand: squeue -r's CPUs and memory of every pending task; a GPU per task
        assert _total(after, "slurm_jobs_cpus", state="pending") == cpus
        assert cpus - cpus_before == TASKS * CPUS
        # (squeue's %m is per node or per CPU as asked: compare what the array adds)
        memory = _total(after, "slurm_jobs_memory_bytes", state="pending") - _total(
            before, "slurm_jobs_memory_bytes", state="pending"
        )
        assert memory == TASKS * MEM_MIB << 20 and mem - mem_before == TASKS * MEM_MIB
        gpus = Counter(by(after, "slurm_jobs_gpus", "state", "type"))
        gpus.subtract(by(before, "slurm_jobs_gpus", "state", "type"))
        assert +gpus == Counter({("pending", "a100"): TASKS})
        print(
            f"\n{lab.release}: exporter pending tasks {pending_tasks}, sdiag "
            f"{_sdiag_pending(lab)}, squeue -r {tasks}; CPUs exporter "
            f"{_total(after, 'slurm_jobs_cpus', state='pending')} squeue -r {cpus}; "
            f"array memory MiB exporter {memory >> 20} squeue -r {mem - mem_before}; "
            f"array a100 demand {gpus[('pending', 'a100')]}"
        )
    finally:
        lab.slurm("scancel", job_id)

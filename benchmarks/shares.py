"""The cost of /shares at 10,000 users in 1,000 accounts (issue 11): one decode and
collection by the exporter (rendered too), against a bare `json.loads` of the same bytes, each in a
fresh process (CPU seconds, and peak RSS as VmHWM: ru_maxrss would keep the forking parent's).

    python3 -m benchmarks.shares [--users 10000 --accounts 1000] [--runs 3]

The answer is grown from the real v0.0.45 capture of a slurmdbd lab
(tests/fixtures/slurm-26.05-slurmdbd), pretty-printed as slurmrestd prints it, with
random usage; it is fed to the decoder in 64 KiB chunks, as the client reads it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
CAPTURE = TOP / "tests/fixtures/slurm-26.05-slurmdbd/v0.0.45_shares.json"

EXPORTER = """
import resource, sys, time
def hwm():  # peak RSS of this process image (ru_maxrss keeps the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
from exporter.api.v0040 import V0040Adapter
from exporter.collectors.shares import collect_shares
from exporter.cycle import render
path, per_user = sys.argv[1], sys.argv[2] == "1"
t0 = time.process_time()
def chunks():
    with open(path, "rb") as f:
        while chunk := f.read(65536):
            yield chunk
data = V0040Adapter("v0.0.45").parse_shares_stream(chunks()).data
text = render(collect_shares(data, per_user=per_user))
cpu = time.process_time() - t0
print(cpu, hwm(), len(data), text.count(b"\\n"))
"""

BASELINE = """
import json, resource, sys, time
def hwm():  # peak RSS of this process image (ru_maxrss keeps the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
t0 = time.process_time()
with open(sys.argv[1], "rb") as f:
    d = json.loads(f.read())
cpu = time.process_time() - t0
print(cpu, hwm(), len(d["shares"]["shares"]), 0)
"""

IDLE = """
import resource, sys
def hwm():  # peak RSS of this process image (ru_maxrss keeps the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
from exporter.api.v0040 import V0040Adapter
from exporter.collectors.shares import collect_shares
print(0, hwm(), 0, 0)
"""


def _wrapped(value: float | None) -> dict[str, Any]:
    return {"set": value is not None, "infinite": False, "number": value or 0}


def synthetic(users: int, accounts: int, seed: int = 11) -> bytes:
    doc = json.loads(CAPTURE.read_bytes())
    template = doc["shares"]["shares"][3]  # a user association (alice), every field
    rng = random.Random(seed)
    out = [doc["shares"]["shares"][0]]  # the root
    per_account = users // accounts
    ident = 2
    for a in range(accounts):
        acct = f"acct{a:04d}"
        rows = [(acct, "root", False)] + [
            (f"user{a * per_account + u:05d}", acct, True) for u in range(per_account)
        ]
        for name, parent, user in rows:
            rec = json.loads(json.dumps(template))
            usage = rng.randrange(0, 10**9)
            rec.update(id=ident, name=name, parent=parent, type=["USER" if user else "ASSOCIATION"],
                       usage=usage)
            rec["shares_normalized"] = _wrapped(rng.random())
            rec["usage_normalized"] = _wrapped(rng.random())
            rec["effective_usage"] = _wrapped(rng.random())
            rec["fairshare"] = {"factor": _wrapped(rng.random()), "level": _wrapped(rng.random())}
            for t in rec["tres"]["run_seconds"]:
                t["value"] = _wrapped(rng.randrange(0, 10**7))
            for t in rec["tres"]["usage"]:
                t["value"] = rng.random() * 10**9
            out.append(rec)
            ident += 1
    doc["shares"]["shares"] = out
    return json.dumps(doc, indent=2).encode()


def _run(script: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=TOP, check=True,
                         capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--accounts", type=int, default=1_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    body = synthetic(args.users, args.accounts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shares.json"
        path.write_bytes(body)
        lines = body.count(b"\n")
        print(f"/shares: {args.users:,} users in {args.accounts:,} accounts: "
              f"{len(body) / 1e6:.0f} MB, {lines:,} lines")
        idle = _run(IDLE)[1]
        print(f"start-up (imports only): peak RSS {idle / 2**20:.0f} MiB")
        for name, script, extra in (("json.loads", BASELINE, "0"),
                                    ("exporter, per account", EXPORTER, "0"),
                                    ("exporter, per user too", EXPORTER, "1")):
            runs = [_run(script, str(path), extra) for _ in range(args.runs)]
            cpu = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            print(f"{name}: CPU {cpu:.2f} s, peak RSS {rss / 2**20:.0f} MiB, "
                  f"{int(runs[0][2]):,} records, {int(runs[0][3]):,} exposition lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())

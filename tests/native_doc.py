"""exporter/native_names.py, the names of Slurm's own metrics, read from Slurm's source.

    python3 -m tests.native_doc GIT_DIR          print exporter/native_names.py
    python3 -m tests.native_doc GIT_DIR --write  write it

GIT_DIR: a clone of SchedMD/slurm with its release tags (e.g. the one `fetch
github:SchedMD/slurm` leaves in /work/.mirror/SchedMD+slurm/repo). Each name is
read from the ADD_METRIC* lines of src/plugins/metrics/openmetrics/openmetrics.c at
TAGS (the first tag that has it is its "since"); the endpoint is the function that
adds it (src/slurmctld/http.c binds one URL per function, 402-411 at slurm-25-11-7-1).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
TARGET = TOP / "exporter" / "native_names.py"
TAGS = ("slurm-25-11-7-1", "slurm-26-05-3-1")
SOURCE = "src/plugins/metrics/openmetrics/openmetrics.c"
HEAD = '''"""Slurm's own metrics (slurm.conf MetricsType=metrics/openmetrics, 25.11+), as
slurmctld serves them under /metrics/ENDPOINT: name -> (endpoint, label, since, help).
Every one is a gauge. Generated from {source} at {tags}
by `python3 -m tests.native_doc GIT_DIR --write`: do not edit.
"""

# ruff: noqa: E501

SOURCE_TAGS = {tags_tuple}

NATIVE_METRICS: dict[str, tuple[str, str, str, str]] = {{
'''

# the function that adds a metric -> the URL under /metrics that serves it
ENDPOINT_OF = {
    "metrics_p_parse_nodes_metrics": "nodes",
    "metrics_p_parse_jobs_metrics": "jobs",
    "_part_stats_to_metric": "partitions",
    "metrics_p_parse_parts_metrics": "partitions",
    "_ua_stats_to_metric": "jobs-users-accts",
    "metrics_p_parse_sched_metrics": "scheduler",
}
# _ua_stats_to_metric's two prefixes and their label (metrics_p_parse_ua_metrics)
UA_PREFIXES = (("user", "username"), ("account", "account"))

_FUNC = re.compile(r"^(?:extern|static) [\w ]+?\*?(\w+)\(")
_ADD = re.compile(r"ADD_METRIC(_KEYVAL_PFX|_KEYVAL)?\(set, \w+, [^,]+,\s*(.*)\);")
_ARG = re.compile(r'"[^"]*"|[^,]+')

Row = tuple[str, str, str, str]  # name, endpoint, label, help


def rows_of(source: str) -> list[Row]:
    out: list[Row] = []
    func = ""
    for line in source.splitlines():
        if m := _FUNC.match(line):
            func = m.group(1)
        m = _ADD.search(line)
        if not m or line.lstrip().startswith("#define"):
            continue
        kind, rest = m.groups()
        args = [a.strip() for a in _ARG.findall(rest)]
        endpoint = ENDPOINT_OF[func]
        if kind == "_KEYVAL_PFX":  # pfx, name, desc, type, key, val
            name, desc = args[1], args[2].strip('"')
            out += [(f"slurm_{p}_{name}", endpoint, label, desc) for p, label in UA_PREFIXES]
        else:  # name, desc, type[, key, val]
            label = args[3].strip('"') if kind == "_KEYVAL" else ""
            out.append((f"slurm_{args[0]}", endpoint, label, args[1].strip('"')))
    return out


def table(git_dir: str) -> str:
    since: dict[str, str] = {}
    latest: dict[str, Row] = {}
    for tag in TAGS:
        source = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{tag}:{SOURCE}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        release = ".".join(tag.split("-")[1:3])
        for row in rows_of(source):
            since.setdefault(row[0], release)
            latest[row[0]] = row
    lines = [
        f"    {name!r}: ({endpoint!r}, {label!r}, {since[name]!r}, {desc!r}),\n"
        for name, (_, endpoint, label, desc) in sorted(latest.items())
    ]
    head = HEAD.format(source=SOURCE, tags=", ".join(TAGS), tags_tuple=repr(TAGS))
    return head + "".join(lines) + "}\n"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--write"]
    text = table(args[0] if args else "/work/.mirror/SchedMD+slurm/repo")
    if "--write" not in sys.argv:
        print(text, end="")
        return
    TARGET.write_text(text)


if __name__ == "__main__":
    main()

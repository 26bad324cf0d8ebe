"""Everything the README names exists and runs: files and tests it cites, make targets,
the exporter's flags and subcommands in its command lines, the scripts (syntax), the
messages it quotes (the README's Install, demo, unit and container commands themselves run
in tests/integration: test_install.py, test_demo.py, test_service.py, test_container.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
README = (TOP / "README.md").read_text()
_DIRS = r"\.ci|scripts|tests|packaging|alerts|dashboards|exporter|benchmarks|docs"
_PATH = re.compile(rf"^(?:{_DIRS})/\S*$|^[\w.-]+\.(?:py|md|toml|yml|yaml|json|sh)(?:::\w+)?$"
                   r"|^(?:Dockerfile|Makefile|CHANGELOG\.md)$")


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def commands() -> list[str]:
    """The README's shell command lines, continuations joined, comments dropped."""
    out = []
    for block in shell_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                out.append(line)
    return out


def named_paths() -> set[str]:
    quoted = set(re.findall(r"`([^`\s]+)`", README))
    linked = {p for p in re.findall(r"\]\(([^)#\s]+)\)", README) if "://" not in p}
    not_ours = {"web-config.yml"}  # the exporter toolkit's file, named as a format
    return {p for p in quoted | linked if _PATH.match(p)} - not_ours


def resolve(name: str) -> Path | None:
    """A path of the tree; a bare file name (`cycle.py`, `test_faults.py`) anywhere in it."""
    if (TOP / name).exists():
        return TOP / name
    hits = [p for p in TOP.glob(f"**/{name}") if ".venv" not in p.parts]
    return hits[0] if hits else None


def test_every_file_and_test_the_readme_names_exists() -> None:
    missing = []
    for name in sorted(named_paths()):
        path, _, test = name.partition("::")
        found = resolve(path.rstrip("/"))
        if found is None or (test and f"def {test}(" not in found.read_text()):
            missing.append(name)
    assert not missing, missing


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (TOP / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    spans = re.findall(r"`(make [^`]+)`", README) + [c for c in commands() if c[:5] == "make "]
    named = {s.split()[1] for s in spans}
    assert named and named <= targets, named - targets
    ci = (TOP / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "make test"


@pytest.fixture(scope="module")
def help_text() -> str:
    out = subprocess.run([sys.executable, "-m", "exporter", "--help"], cwd=TOP,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def test_every_flag_in_the_readme_commands_exists(help_text: str) -> None:
    """Each `--flag` given to slurm-exporter in a command (and in the flags table)."""
    used: set[str] = set()
    for line in commands():
        words = line.split()
        starts = [i for i, w in enumerate(words) if w == "slurm-exporter"
                  or w.endswith("/bin/slurm-exporter")]
        for i in starts:
            used |= {w.split("=")[0] for w in words[i + 1:] if w.startswith("--")}
    used |= set(re.findall(r"^\| `(--[a-z-]+)`", README, re.M))
    assert "--jwt-key-file" in used
    assert not {f for f in used if f not in help_text and f != "--version"}


def test_every_subcommand_in_the_readme_exists(help_text: str) -> None:
    subcommands = set(re.findall(r"slurm-exporter (check|healthcheck|[a-z]+)\b", README))
    assert {"check", "healthcheck"} <= subcommands
    assert {s for s in subcommands if s in ("check", "healthcheck")} <= set(
        re.findall(r"slurm-exporter (\w+) \[flags\]", help_text))


def test_the_scripts_the_readme_names_parse() -> None:
    for name in sorted(n for n in named_paths() if n.endswith(".sh")):
        out = subprocess.run(["bash", "-n", str(TOP / name)], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, (name, out.stderr)


def test_the_quoted_key_permission_message_is_the_codes() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| `the JWT key"))
    quote = re.match(r"\| `([^`]+)`", row)
    assert quote
    source = (TOP / "exporter" / "auth.py").read_text()
    assert all(part.strip() in source for part in quote.group(1).split("...")), quote.group(1)


def test_the_readmes_prometheus_config_fits_the_shipped_alerts() -> None:
    import yaml

    section = README.split("## From zero to a monitored cluster", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    config = yaml.safe_load(re.sub(r"^   ", "", block.group(1), flags=re.M))
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    selectors = set(re.findall(r'job="(\w+)"', "".join(
        p.read_text() for p in (TOP / "alerts").glob("*.yml"))))
    assert selectors and selectors <= set(jobs), (selectors, jobs)
    shipped = {p.name for p in (TOP / "alerts").glob("*.yml")}
    assert {Path(f).name for f in config["rule_files"]} == shipped


def test_the_readmes_slurm_settings_are_the_labs() -> None:
    """What the README tells an admin to set in Slurm is what the lab runs with (and the
    integration tests prove against real slurmctld and slurmrestd)."""
    lab = (TOP / "scripts" / "slurmlab.sh").read_text()
    for setting in ("AuthAltTypes=auth/jwt", "AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key",
                    "-a rest_auth/jwt"):
        assert setting in README and setting in lab, setting

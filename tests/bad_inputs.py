"""The table of bad inputs: what `python3 -m exporter ...` says and exits with, for each.

    python3 -m tests.bad_inputs          print the table (markdown)
    python3 -m tests.bad_inputs --write  write it to tests/golden/bad_inputs.md

Every row really runs the exporter (a process each). tests/unit/test_bad_inputs.py fails
when a row's exit code or message differs from the table. Paths under the test's scratch
folder are shown as $TMP; log lines as `LEVEL: message`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
GOLDEN = TOP / "tests" / "golden" / "bad_inputs.md"
HEADER = "| input | exit | the message now |\n|---|---|---|\n"
# nothing listens on port 9 of loopback (discard): a --once cycle fails at once
DOWN = "http://127.0.0.1:9"
KEY = ["--jwt-key-file", "$TMP/good.key", "--jwt-user", "exporter"]


@dataclass(frozen=True)
class Case:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # name -> content, in $TMP

    @property
    def shown(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        files = "; ".join(f"{name}: {content!r}" for name, content in self.files.items())
        words = [w if w and " " not in w else repr(w) for w in self.args]
        text = " ".join(p for p in (env, "slurm-exporter", *words) if p)
        return f"`{text}`" + (f" ({files})" if files else "")


def _cases() -> list[Case]:
    c: list[Case] = []

    def flag(name: str, *values: str, extra: tuple[str, ...] = ("--auth", "none")) -> None:
        c.extend(Case([name, v, *extra]) for v in values)

    # where slurmrestd is
    flag("--slurmrestd-url", "ftp://slurm-head:6820", "slurm-head:6820", "http://",
         "http://slurm-head:99999", "http://slurm-head:0", "http://slurm-head:port", "unix://")
    flag("--api-version", "42", "0.0.42", "latest")
    for v in ("0", "-1", "1e-9", "nan", "inf", "1e400", "abc", "7200"):
        c.append(Case(["--timeout", v, "--auth", "none"]))
    c.append(Case(["--once", "--slurmrestd-url", "https://127.0.0.1:9", "--auth", "none",
                   "--tls-ca-file", "$TMP/missing.pem"]))
    c.append(Case(["check", "--slurmrestd-url", "https://127.0.0.1:9", "--auth", "none",
                   "--tls-ca-file", "$TMP/garbage.pem"], files={"garbage.pem": "garbage\n"}))
    c.append(Case(["--slurmrestd-url", "https://127.0.0.1:9", "--auth", "none",
                   "--tls-ca-file", "$TMP"]))
    c.append(Case(["--tls-insecure-skip-verify=yes", "--auth", "none"]))
    c.append(Case(["--auth", "none"], env={"SLURM_EXPORTER_TLS_INSECURE_SKIP_VERIFY": "maybe"}))
    # authentication
    c.append(Case(["--once"]))
    flag("--auth", "jwt", extra=())
    c.append(Case(["--auth", "jwt-key"]))
    c.append(Case(["--auth", "token-file"]))
    c.append(Case(["--auth", "token"]))
    c.append(Case(["--jwt-key-file", "$TMP/good.key"]))
    c.append(Case(["--jwt-key-file", "$TMP/good.key", "--jwt-user", ""]))
    c.append(Case(["--once", "--jwt-key-file", "/nonexistent/jwt.key", "--jwt-user", "exporter"]))
    c.append(Case(["--jwt-key-file", "/nonexistent/jwt.key", "--jwt-user", "exporter"]))
    c.append(Case(["--jwt-key-file", "$TMP/empty.key", "--jwt-user", "exporter"],
                  files={"empty.key": ""}))
    c.append(Case(["check", "--jwt-key-file", "$TMP/open.key", "--jwt-user", "exporter"],
                  files={"open.key": "k" * 32}))
    c.append(Case(["--jwt-key-file", "$TMP", "--jwt-user", "exporter"]))
    c.append(Case(["--once", "--log-level", "warning", "--slurmrestd-url", DOWN,
                   "--jwt-key-file", "$TMP/short.key", "--jwt-user", "exporter"],
                  files={"short.key": "k" * 18}))
    for v in ("4", "0", "-5", "1e3", "nan", "99999999999"):
        c.append(Case(["--jwt-lifespan", v, *KEY]))
    c.append(Case(["--token-file", "$TMP/missing.jwt"]))
    c.append(Case(["--token-file", "$TMP/garbage.jwt"], files={"garbage.jwt": "garbage\n"}))
    c.append(Case(["--token-file", "$TMP/empty.jwt"], files={"empty.jwt": ""}))
    c.append(Case(["--once"], env={"SLURM_JWT": "garbage"}))
    c.append(Case(["--auth", "token"], env={"SLURM_JWT": ""}))
    c.append(Case(["--auth", "scontrol", "--scontrol-path", "/nonexistent/scontrol"]))
    # what to collect
    c.append(Case(["--collector-jobs=no", "--auth", "none"]))
    c.append(Case(["--auth", "none"], env={"SLURM_EXPORTER_COLLECTOR_JOBS": "maybe"}))
    c.append(Case(["--auth", "none"], env={"SLURM_EXPORTER_NODES_PER_NODE": "2"}))
    # serving
    flag("--listen-address", "9341", ":99999", "localhost:", "[::1]", "0.0.0.0:http")
    c.append(Case(["--listen-address", "127.0.0.1:$BUSY", "--auth", "none",
                   "--slurmrestd-url", DOWN]))
    flag("--telemetry-path", "metrics")
    for v in ("0", "-1", "1e-9", "nan", "inf", "abc", "1e6"):
        c.append(Case(["--interval", v, "--auth", "none"]))
    flag("--stale-data-max-age", "-1", "nan", "1e9", "abc")
    # per-endpoint intervals: the same bounds, and never below --interval
    flag("--collector-shares-interval", "0", "nan", "1e9", "abc", "10")
    c.append(Case(["--auth", "none", "--interval", "60"],
                  env={"SLURM_EXPORTER_COLLECTOR_JOBS_INTERVAL": "30"}))
    flag("--web-max-connections", "0", "1.5", "100000")
    c.append(Case(["--auth", "none"], env={"SLURM_EXPORTER_ONCE": "2"}))
    c.append(Case(["--auth", "none", "--slurmrestd-url", DOWN, "--web-config-file",
                   "$TMP/missing.yml"]))
    c.append(Case(["--auth", "none", "--slurmrestd-url", DOWN, "--web-config-file",
                   "$TMP/web.yml"], files={"web.yml": "tls_server_config:\n  cert_fle: x\n"}))
    flag("--log-level", "verbose")
    # the config file
    c.append(Case(["--config-file", "$TMP/missing.toml"]))
    c.append(Case(["--config-file", "$TMP/c.toml", "--auth", "none"],
                  files={"c.toml": "# settings\nintreval = 60\n"}))
    c.append(Case(["--config-file", "$TMP/c.toml", "--auth", "none"],
                  files={"c.toml": "timeout = 5\ninterval = -1\n"}))
    c.append(Case(["--config-file", "$TMP/c.toml", "--auth", "none"],
                  files={"c.toml": "interval = \n"}))
    c.append(Case(["--config-file", "$TMP/c.toml", "--auth", "none"],
                  files={"c.toml": "[slurm]\nurl = 'http://x:6820'\n"}))
    c.append(Case(["--config-file", "$TMP/c.yaml", "--auth", "none"],
                  files={"c.yaml": "interval: [1, 2]\nlog-level: verbose\n"}))
    c.append(Case(["--config-file", "$TMP/c.yaml", "--auth", "none"],
                  files={"c.yaml": "- interval\n"}))
    c.append(Case(["--config-file", "$TMP/c.json", "--auth", "none"],
                  files={"c.json": '{\n  "interval": 60,\n  "timout": 5\n}\n'}))
    c.append(Case(["--config-file", "$TMP/c.json", "--auth", "none"],
                  files={"c.json": "interval = 60\n"}))
    c.append(Case(["--config-file", "$TMP/c.toml", "--auth", "none"],
                  env={"SLURM_EXPORTER_INTERVAL": "0"}, files={"c.toml": "interval = 60\n"}))
    # the clusters of the config file (README "Many clusters")
    c.append(Case(["--config-file", "$TMP/c.yaml"], files={"c.yaml": (
        "jwt_user: exporter\nclusters:\n  prod:\n    slurmrestd_url: http://prod:6820\n"
        "    token: abc\n    listen_address: ':9342'\n    intervl: 5\n"
        "  'prod 2': {auth: none}\n"
    )}))
    c.append(Case(["--config-file", "$TMP/c.toml"], files={"c.toml": (
        "[clusters.a]\nauth = 'none'\n[clusters.a]\nauth = 'none'\n"
    )}))
    c.append(Case(["--config-file", "$TMP/c.toml", "--once"], files={"c.toml": (
        "[clusters.a]\nauth = 'none'\n[clusters.b]\nauth = 'none'\n"
    )}))
    c.append(Case(["--config-file", "$TMP/c.toml"], env={"SLURM_JWT": "x.y.z"},
                  files={"c.toml": "[clusters.a]\nslurmrestd_url = 'http://a:6820'\n"}))
    # flags and variables that do not exist
    c.append(Case(["--intreval", "60"]))
    c.append(Case(["--interval=60", "--no-once", "--jwt-keyfile", "k"]))
    c.append(Case(["serve"]))
    c.append(Case(["--auth", "none"], env={"SLURM_EXPORTER_INTREVAL": "60"}))
    c.append(Case(["--interval", "0", "--timeout", "0", "--listen-address", "9341"]))
    return c


_LOG = re.compile(r"^ts=\S+ \S+ level=(\w+) logger=\S+ msg=")


def _normalise(text: str, tmp: str, busy: int) -> list[str]:
    out = []
    for line in text.replace(tmp, "$TMP").replace(str(busy), "$BUSY").splitlines():
        out.append(_LOG.sub(lambda m: f"{m[1]}: ", line))
    return out


@contextmanager
def _busy_port() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def run_case(case: Case, busy: int) -> tuple[int, list[str]]:
    """Exit status and stderr lines of one case, in a scratch folder of its own."""
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        good = Path(tmp, "good.key")
        good.write_bytes(b"g" * 32)
        good.chmod(0o600)
        for name, content in case.files.items():
            path = Path(tmp, name)
            path.write_text(content)
            path.chmod(0o644 if name == "open.key" else 0o600)
        args = [a.replace("$TMP", tmp).replace("$BUSY", str(busy)) for a in case.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        env.update({"PYTHONPATH": str(TOP), **case.env})
        with subprocess.Popen(
            [sys.executable, "-m", "exporter", *args], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
        ) as p:
            try:
                _, err = p.communicate(timeout=RUNNING_AFTER)
            except subprocess.TimeoutExpired:  # a bad value accepted: it serves on
                p.kill()
                _, err = p.communicate()
                return RUNNING, _normalise(err, tmp, busy)
        return p.returncode, _normalise(err, tmp, busy)


# A case still running after this many seconds was accepted (shown as exit "running").
RUNNING_AFTER = 20.0
RUNNING = -999


# variables of ours that the caller's environment must not slip into a case
_OURS = ("SLURM_EXPORTER_", "SLURM_JWT", "CREDENTIALS_DIRECTORY")


def results() -> list[tuple[int, list[str]]]:
    """Every case's result, in order (two at a time: each is a process of its own)."""
    with _busy_port() as busy, ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda case: run_case(case, busy), CASES))


def row(case: Case, code: int, lines: list[str]) -> str:
    said = "<br>".join(f"`{ln}`" for ln in lines) if lines else "(nothing)"
    status = "running" if code == RUNNING else str(code)
    return f"| {case.shown} | {status} | {said.replace('|', '&#124;')} |"


def table() -> str:
    rows = [row(case, *result) for case, result in zip(CASES, results(), strict=True)]
    return HEADER + "\n".join(rows) + "\n"


CASES = _cases()

if __name__ == "__main__":
    text = table()
    if sys.argv[1:] == ["--write"]:
        GOLDEN.write_text(text)
    else:
        sys.stdout.write(text)

"""Many clusters from one exporter: the `clusters` table of --config-file, /probe.

The settings: each cluster's own keys over the top-level ones (and the flags and
variables), every refusal naming the file and line. The routing: /probe?target=NAME
serves that cluster's last snapshot, anything else is a 400 listing the names, and a
target is never a URL the exporter would call. Then the real server process with two
replayed clusters and one that is down (benchmarks/replay.py).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import generate, replay
from exporter import cli
from exporter.cycle import Snapshot
from exporter.server import make_app
from exporter.settings import ConfigError, load_config, load_settings

TOP = Path(__file__).resolve().parents[2]
KEY = b"clusters-test-key-0123456789abcdef"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "jwt.key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    return path


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(args: list[str]) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(args, environ={})
    return str(e.value)


# ------------------------------------------------------------------------------ settings
def test_each_cluster_takes_the_top_level_keys_as_defaults(tmp_path: Path, key: Path) -> None:
    cfg = _write(tmp_path, "c.yaml", f"""\
jwt_user: exporter
interval: 20
jwt_key_file: {key}
clusters:
  prod: {{slurmrestd_url: "https://slurm-prod:6820"}}
  test:
    slurmrestd_url: "http://slurm-test:6820"
    interval: 60
    collector-shares: false
""")
    config = load_config(["--config-file", str(cfg), "--timeout", "3"], environ={})
    assert list(config.clusters) == ["prod", "test"]
    prod, test = config.clusters["prod"], config.clusters["test"]
    assert (prod.slurmrestd_url, prod.interval, prod.jwt_user) == (
        "https://slurm-prod:6820", 20.0, "exporter")
    assert (test.slurmrestd_url, test.interval, test.collector_shares) == (
        "http://slurm-test:6820", 60.0, False)
    assert prod.timeout == test.timeout == 3.0  # a flag is a default of every cluster
    assert prod.jwt_key_file == test.jwt_key_file == key


def test_a_clusters_own_key_wins_over_a_flag(tmp_path: Path, key: Path) -> None:
    cfg = _write(tmp_path, "c.toml", f"""\
jwt_user = "exporter"
jwt_key_file = "{key}"
[clusters.prod]
slurmrestd_url = "http://prod:6820"
interval = 60
""")
    config = load_config(["--config-file", str(cfg), "--interval", "10"], environ={})
    assert config.settings.interval == 10.0
    assert config.clusters["prod"].interval == 60.0


def test_without_clusters_nothing_changes(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "c.toml", 'interval = 7\nauth = "none"\n')
    config = load_config(["--config-file", str(cfg)], environ={})
    assert config.clusters == {}
    assert config.settings == load_settings(["--config-file", str(cfg)], environ={})


def test_the_readmes_cluster_file_loads(tmp_path: Path) -> None:
    readme = (TOP / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Many clusters\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    cfg = _write(tmp_path, "clusters.yaml", block.group(1))
    config = load_config(["--config-file", str(cfg)], environ={})
    assert {n: (s.slurmrestd_url, s.interval) for n, s in config.clusters.items()} == {
        "prod": ("https://slurm-prod:6820", 30.0), "test": ("http://slurm-test:6820", 60.0)
    }


def test_bad_cluster_tables_are_refused_naming_file_and_line(tmp_path: Path, key: Path) -> None:
    cfg = _write(tmp_path, "c.yaml", f"""\
jwt_user: exporter
jwt_key_file: {key}
clusters:
  prod: {{slurmrestd_url: "http://prod:6820"}}
  "bad name":
    slurmrestd_url: "http://x:6820"
  test:
    slurmrestd_url: "ftp://test"
    token: eyJhbGciOiJIUzI1NiJ9.e30.x
    listen_address: ":1"
    intervl: 3
  prod: {{slurmrestd_url: "http://prod2:6820"}}
  slow:
    interval: 0.5
    collector_jobs_interval: 0.1
""")
    got = _problems(["--config-file", str(cfg)]).splitlines()
    assert got == [
        f"{cfg}:12: key 'prod' set twice",
        f"{cfg}:5: cluster name 'bad name': use only letters, digits, '_', '.' and '-', "
        "not '.' or '..' alone (it is the target= of /probe)",
        f"{cfg}:9: clusters.test.token: no secret in the config file: put it in a file only "
        "the exporter can read and give its path as jwt_key_file or token_file",
        f"{cfg}:10: clusters.test.listen_address: a setting of the whole exporter, not of "
        "one cluster: set it at the top level",
        f"{cfg}:11: clusters.test.intervl: unknown key (did you mean 'interval'?)",
        f"{cfg}:8: clusters.test.slurmrestd_url: unsupported scheme 'ftp' in 'ftp://test'; "
        "use http://host:port, https://host:port or unix:///path/to/socket",
        f"{cfg}:15: clusters.slow.collector_jobs_interval: must be at least --interval "
        "(0.5 s): an endpoint is called at most once a cycle (got 0.1)",
    ]
    assert "eyJ" not in "\n".join(got)  # the inline secret is never shown


@pytest.mark.parametrize("text, expected", [
    ('{"clusters": {"a": {"interval": 5}, "a": {"interval": 6}}}', ":1: key 'a' set twice"),
    ('{"clusters": {"a": {"slurmrestd_url": "http://a:1", "slurmrestd-url": "http://b:1"}}}',
     "clusters.a.slurmrestd-url: set twice (as slurmrestd_url)"),
    ('{"clusters": {"a": {"web_config_file": "/x"}}}', "a setting of the whole exporter"),
    ('{"clusters": {"a": {"jwt_key": "secret"}}}', "no secret in the config file"),
    ('{"clusters": {"../x": {}}}', "cluster name '../x'"),
    ('{"clusters": {"..": {}}}', "cluster name '..'"),
    ('{"clusters": {".": {}}}', "cluster name '.'"),
    ('{"clusters": []}', "clusters: expected a table of NAME: {settings}"),
    ('{"clusters": {"a": "http://a:6820"}}', "clusters.a: expected a table of settings"),
])
def test_json_cluster_tables(tmp_path: Path, text: str, expected: str) -> None:
    cfg = _write(tmp_path, "c.json", text)
    assert expected in _problems(["--config-file", str(cfg), "--auth", "none"])


def test_toml_duplicate_cluster_is_refused_with_its_line(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "c.toml", "[clusters.a]\ninterval = 5\n[clusters.a]\ninterval = 6\n")
    assert "line 3" in _problems(["--config-file", str(cfg)])


def test_a_default_that_breaks_a_cluster_names_the_cluster(tmp_path: Path, key: Path) -> None:
    cfg = _write(tmp_path, "c.toml", f'[clusters.a]\njwt_key_file = "{key}"\n')
    assert _problems(["--config-file", str(cfg)]) == (
        f"{cfg}:1: cluster a: --jwt-key-file needs --jwt-user (the Slurm user to act as)"
    )
    cfg = _write(tmp_path, "d.toml", "timeout = 0\n[clusters.a]\ninterval = 5\n")
    assert f"{cfg}:2: cluster a: {cfg}:1: timeout: must be from" in _problems(
        ["--config-file", str(cfg)]
    )


def test_target_must_name_a_cluster(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "c.toml", '[clusters.a]\nauth = "none"\n[clusters.b]\nauth = "none"\n')
    assert _problems(["--config-file", str(cfg), "--target", "c"]) == (
        "--target: no cluster 'c' in --config-file (clusters: a, b)"
    )
    assert _problems(["--config-file", str(cfg), "--once"]) == (
        "--once: with clusters, name the one to read with --target (clusters: a, b)"
    )
    assert _problems(["--target", "a"]) == (
        "--target: names a cluster of the clusters table of --config-file, and there is "
        "none (README: Many clusters); without clusters, leave --target unset"
    )
    config = load_config(["--config-file", str(cfg), "--once", "--target", "b"], environ={})
    assert config.settings.target == "b"


def test_slurm_jwt_is_never_sent_to_every_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _write(tmp_path, "c.toml", '[clusters.a]\ninterval = 5\n')
    # made at run time: no token-looking string in the source
    parts = (b'{"alg":"HS256"}', b'{"sun":"x"}', b"sig")
    token = ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)
    monkeypatch.setenv("SLURM_JWT", token)
    assert cli.main(["--config-file", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "cluster a: $SLURM_JWT would be sent to every cluster" in err
    assert "eyJ" not in err


def test_an_unreadable_key_file_names_the_file_and_line(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # read at start like every file a setting names: the line says where it was set
    cfg = _write(tmp_path, "c.yaml", f"""jwt_user: exporter
clusters:
  ok: {{slurmrestd_url: "http://127.0.0.1:9", jwt_key_file: {key}}}
  lab:
    slurmrestd_url: "http://127.0.0.1:9"
    jwt_key_file: {tmp_path}/nosuch.key
""")
    assert cli.main(["--config-file", str(cfg), "--once", "--target", "lab"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"slurm-exporter: {cfg}:6: clusters.lab.jwt_key_file: cannot read"), err
    assert len(err.splitlines()) == 1 and "--jwt-key-file" not in err


def test_an_unreadable_key_file_of_the_top_level_names_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path, "c.toml", f'jwt_user = "x"\njwt_key_file = "{tmp_path}/no.key"\n')
    assert cli.main(["--config-file", str(cfg), "--once"]) == 2
    assert capsys.readouterr().err.startswith(
        f"slurm-exporter: {cfg}:2: jwt_key_file: cannot read the JWT key")
    monkeypatch.setenv("SLURM_EXPORTER_JWT_KEY_FILE", f"{tmp_path}/no.key")
    assert cli.main(["--jwt-user", "x", "--once"]) == 2
    assert capsys.readouterr().err.startswith(
        "slurm-exporter: SLURM_EXPORTER_JWT_KEY_FILE: cannot read the JWT key")


# ------------------------------------------------------------------------------ routing
def _snap(text: str) -> Snapshot:
    return Snapshot(text.encode(), 0.0, True, gzipped=gzip.compress(text.encode()))


def _get(app: Any, path: str, gzipped: bool = False) -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got.update(status=status, headers=dict(headers))

    route, _, query = path.partition("?")
    environ = {"PATH_INFO": route, "QUERY_STRING": query}
    if gzipped:
        environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def _cluster_app() -> Any:
    probes = {"prod": lambda: _snap("prod 1\n"), "test": lambda: _snap("test 1\n")}
    return make_app(lambda: _snap("health 1\n"), "/metrics", "", probes=probes)


def test_probe_serves_the_named_clusters_snapshot() -> None:
    app = _cluster_app()
    assert _get(app, "/probe?target=prod")[::2] == ("200 OK", b"prod 1\n")
    assert _get(app, "/probe?target=test")[::2] == ("200 OK", b"test 1\n")
    assert _get(app, "/metrics")[::2] == ("200 OK", b"health 1\n")
    _, headers, body = _get(app, "/probe?target=test", gzipped=True)
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == b"test 1\n"
    assert b"/probe?target=prod" in _get(app, "/")[2]


@pytest.mark.parametrize("query, says", [
    ("", b"give one target: /probe?target=NAME (targets: prod, test)"),
    ("target=", b"give one target"),
    ("target=prod&target=test", b"give one target"),
    ("target=staging", b"unknown target 'staging' (targets: prod, test)"),
    ("target=http://127.0.0.1:1/", b"unknown target 'http://127.0.0.1:1/' (targets: prod, "),
])
def test_probe_refuses_anything_but_one_known_name(query: str, says: bytes) -> None:
    status, _, body = _get(_cluster_app(), f"/probe?{query}")
    assert status == "400 Bad Request"
    assert says in body


def test_without_clusters_probe_says_so_and_metrics_is_unchanged() -> None:
    app = make_app(lambda: _snap("one 1\n"), "/metrics", "http://slurm:6820")
    status, _, body = _get(app, "/probe?target=prod")
    assert status == "400 Bad Request" and body.startswith(b"no clusters configured")
    assert _get(app, "/metrics")[::2] == ("200 OK", b"one 1\n")


# ------------------------------------------------------------------------------ process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _wait(what: str, check: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, socket.socket]]:
    """The exporter with clusters big (300 jobs), small (120 jobs) and down (nothing
    listens), and a socket listening at the URL that a caller names as a target."""
    tmp = tmp_path_factory.mktemp("clusters")
    servers, urls = [], {}
    for name, jobs in (("big", 300), ("small", 120)):
        data = tmp / name
        generate.generate(data, jobs, 20, ["v0.0.45"], seed=jobs)
        server, _ = replay.start(data, KEY)
        servers.append(server)
        urls[name] = replay.url_of(server)
    key = tmp / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    urls["down"] = f"http://127.0.0.1:{_free_port()}"
    bait = socket.create_server(("127.0.0.1", 0))
    clusters = {n: {"slurmrestd_url": u} for n, u in urls.items()}
    cfg = tmp / "clusters.json"
    cfg.write_text(json.dumps({"jwt_user": "bench", "jwt_key_file": str(key), "interval": 0.5,
                               "timeout": 2, "clusters": clusters}))
    base = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config-file", str(cfg),
         "--listen-address", base.removeprefix("http://"), "--log-level", "warning"],
        cwd=TOP, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait("every cluster's first cycle", lambda: all(
            b"slurm_exporter_target_last_collection_timestamp_seconds{target=\"%s\"}" % n.encode()
            in _http(f"{base}/metrics")[1] for n in urls
        ))
        yield base, bait
    finally:
        proc.terminate()
        proc.wait(15)
        bait.close()
        for server in servers:
            server.shutdown()


def _value(page: bytes, series: str) -> float:
    m = re.search(rb"^" + re.escape(series.encode()) + rb" (\S+)$", page, re.M)
    assert m, f"{series} not in the page"
    return float(m[1])


def test_each_probe_serves_its_own_cluster(served: tuple[str, socket.socket]) -> None:
    base, _ = served
    big, small = (_http(f"{base}/probe?target={n}")[1] for n in ("big", "small"))
    jobs = 'slurm_exporter_endpoint_up{endpoint="jobs"}'
    assert _value(big, jobs) == _value(small, jobs) == 1.0
    jobs_line = rb"^slurm_jobs_by_state\{[^}]*\} (\S+)$"
    assert sum(float(v) for v in re.findall(jobs_line, big, re.M)) == 300
    assert sum(float(v) for v in re.findall(jobs_line, small, re.M)) == 120


def test_a_cluster_down_is_reported_and_the_others_are_up(
    served: tuple[str, socket.socket],
) -> None:
    base, _ = served
    _, down = _http(f"{base}/probe?target=down")
    assert _value(down, 'slurm_exporter_endpoint_up{endpoint="jobs"}') == 0.0
    _, health = _http(f"{base}/metrics")
    assert _value(health, 'slurm_exporter_target_up{target="down"}') == 0.0
    assert _value(health, 'slurm_exporter_target_up{target="big"}') == 1.0
    assert _value(health, 'slurm_exporter_target_up{target="small"}') == 1.0
    assert b"slurm_jobs_by_state{" not in health  # /metrics is the exporter's own health


def test_a_target_is_never_a_url_the_exporter_calls(served: tuple[str, socket.socket]) -> None:
    base, bait = served
    host, port = bait.getsockname()[:2]
    for target in (f"http://{host}:{port}/", f"{host}:{port}", f"//{host}:{port}"):
        status, body = _http(f"{base}/probe?target={urllib.parse.quote(target)}")
        assert status == 400 and b"(targets: big, small, down)" in body
    bait.setblocking(False)
    with pytest.raises(BlockingIOError):  # nobody connected to the URL named
        bait.accept()


# ------------------------------------------------------------------------ --once, check
def test_once_reads_the_target_and_check_every_cluster(
    tmp_path: Path, key: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from tests.fakerestd import FakeSlurmrestd

    with FakeSlurmrestd(key=KEY) as fake:
        cfg = _write(tmp_path, "c.toml", f"""\
jwt_user = "exporter"
jwt_key_file = "{key}"
timeout = 2
[clusters.up]
slurmrestd_url = "{fake.url}"
[clusters.down]
slurmrestd_url = "http://127.0.0.1:{_free_port()}"
""")
        assert cli.main(["--config-file", str(cfg), "--once", "--target", "up"]) == 0
        out = capfdbinary.readouterr().out
        assert b'slurm_exporter_endpoint_up{endpoint="jobs"} 1.0' in out
        assert cli.main(["--config-file", str(cfg), "--once", "--target", "down"]) == 1
        capfdbinary.readouterr()
        assert cli.main(["check", "--config-file", str(cfg)]) == 1  # the worst of the two
        out = capfdbinary.readouterr().out
        assert out.index(b"== cluster up") < out.index(b"== cluster down")
        assert cli.main(["check", "--config-file", str(cfg), "--target", "up"]) == 0
        out = capfdbinary.readouterr().out
        assert b"== cluster up" in out and b"cluster down" not in out

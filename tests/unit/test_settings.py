"""Settings: flags, SLURM_EXPORTER_* variables, config files, and fail-fast messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.settings import ConfigError, load_settings, parse_listen_address


def test_defaults() -> None:
    s = load_settings([])
    assert s.slurmrestd_url == "http://localhost:6820"
    assert s.api_version == "auto" and s.listen_address == ":9341"
    assert s.interval == 30 and s.jwt_lifespan == 1800
    assert s.enabled_endpoints() == (
        "diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses"
    )


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "exporter.toml"
    cfg.write_text('interval = 60\ntimeout = 3\nslurmrestd-url = "http://file:6820"\n')
    monkeypatch.setenv("SLURM_EXPORTER_TIMEOUT", "4")
    s = load_settings(["--config-file", str(cfg), "--slurmrestd-url", "http://flag:6820"])
    assert s.interval == 60  # file
    assert s.timeout == 4  # env over file
    assert s.slurmrestd_url == "http://flag:6820"  # flag over file


def test_yaml_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "exporter.yaml"
    cfg.write_text("jobs_per_user: false\nnodes-per-node: true\n")
    s = load_settings(["--config-file", str(cfg)])
    assert s.jobs_per_user is False and s.nodes_per_node is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "--interval: must be from 0.001 to 86400 seconds (got '0')"),
        (["--timeout", "abc"], "--timeout: expected a number (got 'abc')"),
        (["--slurmrestd-url", "ftp://x:1"], "unsupported scheme 'ftp'"),
        (["--slurmrestd-url", "http://"], "no host"),
        (["--api-version", "42"], "--api-version"),
        (["--listen-address", "9341"], "--listen-address"),
        (["--auth", "jwt-key"], "--auth jwt-key needs --jwt-key-file"),
        (["--jwt-key-file", "/k"], "needs --jwt-user"),
    ],
)
def test_bad_values_fail_fast_naming_the_setting(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(args)


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("intervall = 5\n")
    with pytest.raises(ConfigError, match="intervall"):
        load_settings(["--config-file", str(cfg)])


def test_cli_exits_2_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--interval", "-5"]) == 2
    assert capsys.readouterr().err == (
        "slurm-exporter: --interval: must be from 0.001 to 86400 seconds (got '-5')\n"
    )


def test_cli_without_credentials_says_what_to_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JWT", raising=False)
    assert main(["--once"]) == 2
    assert "--jwt-key-file" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from exporter import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"slurm-exporter {__version__}"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [(":9341", ("", 9341)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:9341", ("::1", 9341))],
)
def test_listen_address(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(text) == parsed


# ------------------------------------------- where a bad value came from (issue 10, item 6)
def test_an_unknown_key_in_the_file_is_named_with_its_line_and_the_key_meant(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("# the exporter\nintreval = 60\n")
    with pytest.raises(ConfigError) as e:
        load_settings(["--config-file", str(cfg)])
    assert str(e.value) == f"{cfg}:2: unknown key 'intreval' (did you mean 'interval'?)"


def test_a_bad_value_is_blamed_on_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timeout: 5\ninterval: -1\n")
    with pytest.raises(ConfigError) as e:
        load_settings(["--config-file", str(cfg)])
    assert str(e.value) == f"{cfg}:2: interval: must be from 0.001 to 86400 seconds (got -1)"
    monkeypatch.setenv("SLURM_EXPORTER_TIMEOUT", "inf")
    with pytest.raises(ConfigError, match=r"^SLURM_EXPORTER_TIMEOUT: must be .* \(got 'inf'\)"):
        load_settings([])
    with pytest.raises(ConfigError, match=r"^--timeout: must be from .* \(got 'nan'\)"):
        load_settings(["--timeout", "nan"])


def test_json_config_files_are_read(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"interval": 60, "nodes-per-node": true}')
    s = load_settings(["--config-file", str(cfg)])
    assert s.interval == 60 and s.nodes_per_node is True
    cfg.write_text("interval = 60\n")
    with pytest.raises(ConfigError, match=r"^.*c\.json: not valid JSON \("):
        load_settings(["--config-file", str(cfg)])


def test_unknown_flags_and_variables_suggest_the_one_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(["--intreval", "5"])
    assert str(e.value) == "unknown flag --intreval (did you mean '--interval'?); see --help"
    with pytest.raises(ConfigError, match="unknown flag --int "):  # no abbreviations
        load_settings(["--int", "5"])
    monkeypatch.setenv("SLURM_EXPORTER_INTREVAL", "5")
    with pytest.raises(ConfigError) as e:
        load_settings([])
    assert "did you mean 'SLURM_EXPORTER_INTERVAL'?" in str(e.value)


def test_every_problem_is_said_at_once_one_line_each(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("timout = 5\n")
    with pytest.raises(ConfigError) as e:
        load_settings(["--config-file", str(cfg), "--interval", "0", "--log-level", "loud"])
    assert len(str(e.value).splitlines()) == 3


# ------------------------------------------------- numbers, ports, files (items 3 and 7)
@pytest.mark.parametrize(
    ("flag", "value"),
    [("--interval", v) for v in ("1e-9", "inf", "nan", "-1", "0", "1e300")]
    + [("--timeout", v) for v in ("1e-9", "inf", "nan", "-1", "0", "1e300")]
    + [("--jwt-lifespan", v) for v in ("4", "-5", "nan", "1e3", str(2**31))],
)
def test_numbers_out_of_range_are_refused(flag: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{flag}: "):
        load_settings([flag, value, "--auth", "none"])


@pytest.mark.parametrize("url", ["http://h:65536", "http://h:99999", "https://h:0", "http://h:x"])
def test_a_slurmrestd_port_out_of_range_is_refused_like_the_listen_port(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^--slurmrestd-url: the port in .* from 1 to 65535"):
        load_settings(["--slurmrestd-url", url])


def test_a_missing_or_garbage_ca_file_is_refused_naming_flag_file_and_fix(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as e:
        load_settings(["--tls-ca-file", str(missing)])
    assert str(e.value).startswith(f"--tls-ca-file: cannot read {missing}: No such file")
    assert "leave --tls-ca-file unset" in str(e.value)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("garbage\n")
    with pytest.raises(ConfigError, match=f"^--tls-ca-file: {garbage} holds no PEM certificate"):
        load_settings(["--tls-ca-file", str(garbage)])


@pytest.mark.parametrize("mode", [["--once"], ["check"], []])
def test_a_missing_key_stops_every_mode_at_start(
    mode: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*mode, "--jwt-key-file", "/nonexistent/jwt.key", "--jwt-user", "exporter"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("slurm-exporter: --jwt-key-file: cannot read the JWT key /nonexistent")
    assert "minted" not in err

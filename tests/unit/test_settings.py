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
    assert s.enabled_endpoints() == ("diag", "jobs", "nodes", "partitions", "ping")


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

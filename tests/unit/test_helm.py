"""The Helm chart (packaging/helm/slurm-exporter): `helm lint`, `helm template` with the
values files of its ci/ folder, and what the rendered manifests must hold.

The rules and dashboards are compared with whatever alerts/*.yml and dashboards/*.json hold
when the test runs (the chart reaches them through symlinks), never with a list of names.
Secrets: keys made at run time are given as values, then searched for in everything rendered.
helm comes from scripts/install-helm.sh (run by scripts/ci-setup.sh): in CI a missing helm
fails the test; elsewhere it is skipped with the command that installs it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from tests.k8s_manifests import MANIFESTS, manifests
from tests.promql import ALERTS, DASHBOARDS, RULE_FILES, TOP

CHART = TOP / "packaging" / "helm" / "slurm-exporter"
ONE = CHART / "ci" / "one-cluster-values.yaml"
MANY = CHART / "ci" / "many-clusters-values.yaml"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
CONFIG_PATH = "/etc/slurm-exporter/config/config.yaml"
UID = 9341
# keys given as values, made at run time: they must end up in a Secret and nowhere else
KEY = secrets.token_hex(32)
GPU_KEY = secrets.token_hex(32)
GPU = r"clusters.gpu\.burst-1.jwtKey.value"


def _helm() -> str:
    helm = shutil.which("helm")
    if helm:
        return helm
    if os.environ.get("CI"):
        pytest.fail("helm is missing in CI: scripts/ci-setup.sh installs it (install-helm.sh)")
    pytest.skip("helm is not installed: `bash scripts/install-helm.sh` (as root) builds it")


def _run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    helm = _helm()
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=120)


@functools.cache
def _render(*args: str) -> tuple[dict[str, Any], ...]:
    r = _run_helm("template", "rel", str(CHART), "--namespace", "monitoring", *args)
    assert r.returncode == 0, r.stderr
    return tuple(d for d in yaml.safe_load_all(r.stdout) if d)


def _text(*args: str) -> str:
    r = _run_helm("template", "rel", str(CHART), *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _values(path: Path) -> tuple[str, ...]:
    return ("-f", str(path))


SCENARIOS = {
    "one-cluster": _values(ONE),
    "one-cluster-key-as-value": (*_values(MINIMAL), "--set-string", f"jwtKey.value={KEY}"),
    "many-clusters": (*_values(MANY), "--set-string", f"{GPU}={GPU_KEY}"),
    "many-clusters-and-default-key": (
        *_values(MANY), "--set-string", f"{GPU}={GPU_KEY}", "--set-string", f"jwtKey.value={KEY}",
    ),
}


PLAIN = "plain-manifests"  # packaging/kubernetes/slurm-exporter.yaml
ALL = sorted([*SCENARIOS, PLAIN])


def _docs(name: str) -> tuple[dict[str, Any], ...]:
    if name == PLAIN:
        return tuple(d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d)
    return _render(*SCENARIOS[name])


def _kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (doc,) = _kind(docs, kind)
    return doc


def _pod(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (container,) = _pod(docs)["containers"]
    return dict(container)


def _config(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (cm,) = [d for d in _kind(docs, "ConfigMap") if "config.yaml" in d["data"]]
    config: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return config


def _key_files(config: dict[str, Any]) -> list[str]:
    tables = [config, *config.get("clusters", {}).values()]
    return [t["jwt_key_file"] for t in tables if "jwt_key_file" in t]


# ----------------------------------------------------------------------------- lint
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_helm_lint(name: str) -> None:
    r = _run_helm("lint", "--strict", str(CHART), *SCENARIOS[name])
    assert r.returncode == 0, r.stdout + r.stderr


def test_chart_app_version_is_the_exporters() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    image = _container(_render(*SCENARIOS["one-cluster"]))["image"]
    assert image == f"slurm-exporter:{__version__}"


# ----------------------------------------------------------------------------- rules, dashboards
def test_prometheus_rules_are_the_files_of_alerts() -> None:
    rules = _kind(_render(*SCENARIOS["one-cluster"]), "PrometheusRule")
    by_source = {r["metadata"]["annotations"]["slurm-exporter/source"]: r for r in rules}
    assert sorted(by_source) == [f"alerts/{p.name}" for p in RULE_FILES]
    for path in RULE_FILES:
        rule = by_source[f"alerts/{path.name}"]
        assert rule["spec"] == yaml.safe_load(path.read_text()), path
        assert list(rule["spec"]) == ["groups"]


def test_prometheus_rules_embed_the_text_unchanged() -> None:
    """Not only the same data: the same lines (comments included), under `spec:`."""
    text = _text(*SCENARIOS["one-cluster"])
    for path in RULE_FILES:
        indented = "".join(f"  {line}" for line in path.read_text().splitlines(keepends=True))
        assert indented in text, path


def test_dashboards_are_the_files_of_dashboards() -> None:
    maps = [d for d in _kind(_render(*SCENARIOS["one-cluster"]), "ConfigMap")
            if "config.yaml" not in d["data"]]
    assert sorted(n for m in maps for n in m["data"]) == [p.name for p in DASHBOARDS]
    for cm in maps:
        ((name, text),) = cm["data"].items()
        original = (TOP / "dashboards" / name).read_text()
        assert text.rstrip("\n") == original.rstrip("\n"), name
        assert json.loads(text) == json.loads(original)
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Slurm"}
        assert cm["metadata"]["namespace"] == "monitoring"


def test_the_chart_reaches_alerts_and_dashboards_through_symlinks() -> None:
    """One copy of each file: what the chart embeds is the repository's alerts/ and
    dashboards/ (helm follows the links, and `helm package` stores their content)."""
    assert (CHART / "files" / "alerts").resolve() == ALERTS
    assert (CHART / "files" / "dashboards").resolve() == TOP / "dashboards"


def test_the_packaged_chart_holds_the_files_themselves(tmp_path: Path) -> None:
    """`helm package` follows the symlinks: the archive renders the same, anywhere."""
    r = _run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert r.returncode == 0, r.stderr
    (archive,) = tmp_path.glob("slurm-exporter-*.tgz")
    one = SCENARIOS["one-cluster"]
    r = _run_helm("template", "rel", str(archive), "--namespace", "monitoring", *one)
    assert r.returncode == 0, r.stderr
    assert tuple(d for d in yaml.safe_load_all(r.stdout) if d) == _render(*one)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_operator_or_grafana_objects_unless_asked(name: str) -> None:
    off = ("--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false",
           "--set", "dashboards.enabled=false")
    docs = _render(*SCENARIOS[name], *off)
    assert {d["kind"] for d in docs} <= {"ConfigMap", "Deployment", "Secret", "Service"}
    assert len([d for d in _kind(docs, "ConfigMap")]) == 1


# ----------------------------------------------------------------------------- secrets
def _env_and_config_maps(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, str]]:
    for doc in docs:
        if doc["kind"] != "Secret":
            yield doc["kind"], yaml.safe_dump(doc)


@pytest.mark.parametrize("name", ALL)
def test_keys_only_in_secrets_mounted_read_only(name: str) -> None:
    docs = _docs(name)
    pod, container = _pod(docs), _container(docs)
    # never an environment variable, from a Secret or otherwise
    assert "env" not in container and "envFrom" not in container
    # a key given as a value: in a Secret (base64), nowhere else, in no form
    for kind, text in _env_and_config_maps(docs):
        for key in (KEY, GPU_KEY):
            assert key not in text and base64.b64encode(key.encode()).decode() not in text, kind
    # every Secret volume: mounted read-only, no permission for "others" (the exporter
    # refuses such a key file), readable through the pod's fsGroup
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert secret_volumes
    for volume, secret in secret_volumes.items():
        assert mounts[volume]["readOnly"] is True
        assert secret["defaultMode"] & 0o007 == 0 and secret["defaultMode"] & 0o440
        assert [i["path"] for i in secret["items"]] == ["jwt_key"]
    assert pod["securityContext"]["fsGroup"] == UID
    # each key file of the config file is such a mount's file, one mount per key
    files = _key_files(_config(docs))
    dirs = {mounts[v]["mountPath"] for v in secret_volumes}
    assert sorted(str(Path(f).parent) for f in files) == sorted(dirs)
    assert all(Path(f).name == "jwt_key" for f in files)


def test_keys_given_as_values_are_in_the_charts_secret() -> None:
    docs = _render(*SCENARIOS["many-clusters-and-default-key"])
    (secret,) = _kind(docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"jwt_key": KEY, "gpu.burst-1.jwt_key": GPU_KEY}
    # the site's own Secrets are referenced, not copied
    names = {v["secret"]["secretName"] for v in _pod(docs)["volumes"] if "secret" in v}
    assert names == {secret["metadata"]["name"], "slurm-prod-jwt-key", "slurm-test-jwt-key"}


# ----------------------------------------------------------------------------- pod
def _dockerfile_user() -> str:
    (user,) = re.findall(r"^USER\s+(\S+)", (TOP / "Dockerfile").read_text(), re.M)
    return user


@pytest.mark.parametrize("name", ALL)
def test_security_context_is_the_images_non_root_user(name: str) -> None:
    docs = _docs(name)
    pod, container = _pod(docs), _container(docs)
    assert _dockerfile_user() == f"{UID}:{UID}"
    ctx = pod["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["runAsNonRoot"]) == (UID, UID, True)
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container["securityContext"]
    assert c["readOnlyRootFilesystem"] is True
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("name", ["one-cluster", PLAIN])
def test_probes_ask_healthy_where_the_exporter_listens(name: str) -> None:
    docs = _docs(name)
    container = _container(docs)
    (port,) = container["ports"]
    assert _config(docs)["listen_address"] == f":{port['containerPort']}"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/-/healthy", "port": port["name"]}
    # and the exporter's web server answers that path
    from exporter.server import make_app

    status: list[str] = []
    app = make_app(lambda: pytest.fail("no snapshot for /-/healthy"), "/metrics", "x")
    body = b"".join(app({"PATH_INFO": "/-/healthy"}, lambda s, h: status.append(s)))
    assert (status, body) == (["200 OK"], b"OK\n")
    service = _one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


# ----------------------------------------------------------------------------- config file
def _write_in(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    """The rendered config file with its key files where Kubernetes puts them (mode 0440
    under the pod's fsGroup), all under tmp_path: the exporter's arguments to read it."""
    text = yaml.safe_dump(config).replace("/etc/slurm-exporter/", f"{tmp_path}/")
    for key_file in _key_files(yaml.safe_load(text)):
        Path(key_file).parent.mkdir(parents=True, exist_ok=True)
        Path(key_file).write_text(secrets.token_hex(32))
        os.chmod(key_file, 0o440)
    (tmp_path / "config.yaml").write_text(text)
    return ["--config-file", str(tmp_path / "config.yaml")]


def test_one_cluster_config_file_is_read_by_the_exporter(tmp_path: Path) -> None:
    from exporter.auth import start_up_check, token_source_from_settings
    from exporter.settings import load_settings

    config = _config(_render(*SCENARIOS["one-cluster"]))
    assert config == {
        "slurmrestd_url": "http://slurm-head:6820",
        "jwt_user": "exporter",
        "jwt_key_file": "/etc/slurm-exporter/jwt/jwt_key",
        "listen_address": ":9341",
    }
    settings = load_settings(_write_in(tmp_path, config), environ={})
    assert settings.jwt_key_file == tmp_path / "jwt" / "jwt_key"
    start_up_check(token_source_from_settings(settings))  # mints a token from the 0440 key


def test_many_clusters_config_file(tmp_path: Path) -> None:
    docs = _render(*SCENARIOS["many-clusters"])
    config = _config(docs)
    assert config["jwt_user"] == "exporter" and config["interval"] == 30
    assert "slurmrestd_url" not in config and "jwt_key_file" not in config
    clusters = config["clusters"]
    assert sorted(clusters) == ["gpu.burst-1", "prod", "test"]
    for name, table in clusters.items():
        assert table["jwt_key_file"] == f"/etc/slurm-exporter/clusters/{name}/jwt_key"
        assert "jwtKey" not in table
    assert clusters["test"]["interval"] == 60 and clusters["test"]["collector_shares"] is False
    assert clusters["gpu.burst-1"]["jwt_user"] == "gpu-exporter"
    assert _container(docs)["args"] == [f"--config-file={CONFIG_PATH}"]


def test_many_clusters_config_file_is_read_by_the_exporter(tmp_path: Path) -> None:
    import exporter.settings
    from exporter.auth import start_up_check, token_source_from_settings

    load_config = getattr(exporter.settings, "load_config", None)
    if load_config is None:
        pytest.skip("this exporter has no clusters table yet (issue 13, item 1)")
    read = load_config(_write_in(tmp_path, _config(_render(*SCENARIOS["many-clusters"]))), {})
    assert sorted(read.clusters) == ["gpu.burst-1", "prod", "test"]
    for name, settings in read.clusters.items():
        assert settings.jwt_key_file == tmp_path / "clusters" / name / "jwt_key"
        start_up_check(token_source_from_settings(settings))
    assert (read.clusters["test"].interval, read.clusters["prod"].interval) == (60, 30)
    assert read.clusters["gpu.burst-1"].jwt_user == "gpu-exporter"
    assert read.clusters["prod"].jwt_user == "exporter"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "slurmrestdUrl: set slurmrestd's URL"),
        (("--set", "clusters.a/b.slurmrestd_url=http://x:6820"), '"a/b" is not a cluster name'),
        (("--set", "clusters.\\.\\..slurmrestd_url=http://x:6820"), '".." is not a cluster name'),
        (("--set", "clusters.prod.interval=60"), "clusters.prod: slurmrestd_url is missing"),
        (("--set", "slurmrestdUrl=http://x:6820,jwtKey.existingSecret=s,jwtKey.value=k"),
         "jwtKey: set existingSecret or value, not both"),
        # a secret would land in the ConfigMap (and the exporter refuses it at start)
        (("--set", "clusters.prod.slurmrestd_url=http://x:6820,clusters.prod.token=abc"),
         "clusters.prod.token: no secret in the config file's ConfigMap"),
        (("--set", "slurmrestdUrl=http://x:6820,config.jwt-key=abc"),
         "config.jwt-key: no secret in the config file's ConfigMap"),
    ],
)
def test_bad_values_stop_the_rendering(args: tuple[str, ...], message: str) -> None:
    r = _run_helm("template", "rel", str(CHART), *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr


# ----------------------------------------------------------------------------- ServiceMonitor
def _alerts_job() -> str:
    """The job the alert rules expect (`up{job="..."}`)."""
    jobs = {j for p in RULE_FILES for j in re.findall(r'up\{job="([^"]+)"\}', p.read_text())}
    (job,) = jobs
    return job


def test_service_monitor_one_cluster() -> None:
    docs = _render(*SCENARIOS["one-cluster"])
    sm = _one(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert sm["spec"]["selector"]["matchLabels"] == selector
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": _alerts_job()}]


def test_service_monitor_many_clusters_probes_each() -> None:
    """As the README's scrape configuration: /probe?target=NAME, NAME as cluster and
    instance, the alerts' job; and /metrics, the exporter's health, as a job of its own."""
    sm = _one(_render(*SCENARIOS["many-clusters"]), "ServiceMonitor")
    *probes, health = sm["spec"]["endpoints"]
    assert [p["params"]["target"] for p in probes] == [["gpu.burst-1"], ["prod"], ["test"]]
    for p in probes:
        (name,) = p["params"]["target"]
        assert (p["port"], p["path"]) == ("http", "/probe")
        labels = {r["targetLabel"]: r["replacement"] for r in p["relabelings"]}
        assert labels == {"job": _alerts_job(), "cluster": name, "instance": name}
    assert health["path"] == "/metrics"
    assert health["relabelings"] == [{"targetLabel": "job", "replacement": "slurm-exporter"}]


def test_service_monitor_off() -> None:
    docs = _render(*SCENARIOS["one-cluster"], "--set", "serviceMonitor.enabled=false")
    assert not _kind(docs, "ServiceMonitor")
    assert _kind(docs, "PrometheusRule")


# ----------------------------------------------------------------------------- plain manifests
def test_plain_manifests_are_the_chart_rendered() -> None:
    assert MANIFESTS.read_text() == manifests(_helm()), (
        f"{MANIFESTS.relative_to(TOP)} is out of date: run python3 -m tests.k8s_manifests --write"
    )
    docs = _docs(PLAIN)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service"]
    assert all("helm.sh/chart" not in d["metadata"]["labels"] for d in docs)
    (volume,) = [v for v in _pod(docs)["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "slurm-exporter-jwt-key"


def test_the_charts_secret_keys_are_the_exporters() -> None:
    from exporter.settings import INLINE_SECRETS

    text = (CHART / "templates" / "_helpers.tpl").read_text()
    (listed,) = re.findall(r'\(list ("token"[^)]*)\)', text)
    assert set(re.findall(r'"([^"]+)"', listed)) == INLINE_SECRETS

"""packaging/kubernetes/slurm-exporter.yaml, for sites without Helm: the chart rendered for
one cluster, its key from a Secret `slurm-exporter-jwt-key`, without Helm's own labels.

    python3 -m tests.k8s_manifests          print the manifests
    python3 -m tests.k8s_manifests --write  write them (after changing the chart)

tests/unit/test_helm.py fails when the file and the chart disagree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
CHART = TOP / "packaging" / "helm" / "slurm-exporter"
MANIFESTS = TOP / "packaging" / "kubernetes" / "slurm-exporter.yaml"
VALUES = (
    "--set", "slurmrestdUrl=http://slurm-head:6820",
    "--set", "jwtUser=exporter",
    "--set", "jwtKey.existingSecret=slurm-exporter-jwt-key",
)
HEADER = """\
# slurm-exporter on Kubernetes without Helm: one cluster (README.md, "Kubernetes").
#   kubectl create secret generic slurm-exporter-jwt-key \\
#     --from-file=jwt_key=/etc/slurm/jwt_hs256.key
#   edit slurmrestd_url and jwt_user in the ConfigMap below, then
#   kubectl apply -f slurm-exporter.yaml
# Generated from packaging/helm/slurm-exporter by `python3 -m tests.k8s_manifests --write`:
# change the chart, not this file. Rules and dashboards: alerts/ and dashboards/ as they are.
"""
# labels that say Helm manages the objects, which is not true of these
HELM_LABELS = re.compile(r"^ *(helm\.sh/chart|app\.kubernetes\.io/managed-by): .*\n", re.M)


def manifests(helm: str) -> str:
    out = subprocess.run(
        [helm, "template", "slurm-exporter", str(CHART), *VALUES],
        capture_output=True, text=True, check=True,
    ).stdout
    return HEADER + HELM_LABELS.sub("", out)


if __name__ == "__main__":
    text = manifests(shutil.which("helm") or "helm")
    if "--write" in sys.argv:
        MANIFESTS.parent.mkdir(parents=True, exist_ok=True)
        MANIFESTS.write_text(text)
    else:
        print(text, end="")

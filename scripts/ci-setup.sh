#!/usr/bin/env bash
# ci-setup.sh - install what the tests need on a fresh Debian machine (as root).
# Idempotent and non-interactive; run from anywhere:  bash scripts/ci-setup.sh
#   apt: python3 + python3-venv + make, debootstrap + debian-archive-keyring (slurmlab.sh
#        chroots), systemd-container (systemd-nspawn: the unit's test), curl, prometheus (promtool)
#   helm: built from the Go module proxy by scripts/install-helm.sh (the chart's tests)
#   pip: the project itself with its test extras (editable), into the project venv .venv
#        (`make venv`: Debian's own python3 refuses pip outside a venv, PEP 668)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "ci-setup.sh: needs root (apt-get)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# installing prometheus must not start a Prometheus server: forbid service starts
# (unless the machine already has a policy of its own)
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv make debootstrap \
  debian-archive-keyring curl prometheus openssl systemd systemd-container >/dev/null
command -v promtool >/dev/null

bash scripts/install-helm.sh >/dev/null

make --no-print-directory venv
echo "ci-setup.sh: ok (promtool $(promtool --version 2>&1 | awk 'NR==1 {print $3}'), helm $(helm version --template '{{.Version}}'), $(.venv/bin/python --version) in .venv)"

#!/usr/bin/env bash
# demo.sh - a live demo: a one-node Slurm cluster (26.05 by default) with jobs in several
# states, and slurm-exporter reading it with auto-renewed tokens on http://127.0.0.1:9341.
#
#   scripts/demo.sh [--release 22.05|24.11|26.05] [--listen-address ADDR]   (Ctrl-C stops all)
#   scripts/demo.sh stop                                                  (if anything is left)
#
# Needs root (the lab uses namespaces and a debootstrap chroot); installs what it needs.
set -euo pipefail

HERE=$(dirname "$(readlink -f "$0")")
TOP=$(dirname "$HERE")
LAB="$HERE/slurmlab.sh"
RELEASE=26.05
LISTEN=127.0.0.1:9341

if [ "${1:-}" = stop ]; then
  exec "$LAB" stop --release all
fi
while [ $# -gt 0 ]; do
  case $1 in
    --release) RELEASE=$2; shift 2;;
    --listen-address) LISTEN=$2; shift 2;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "demo.sh: unknown argument $1" >&2; exit 2;;
  esac
done

[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (the lab needs namespaces)" >&2; exit 1; }
command -v slurm-exporter >/dev/null || bash "$HERE/ci-setup.sh"

"$LAB" stop --release "$RELEASE" >/dev/null 2>&1 || true
eval "$("$LAB" start --release "$RELEASE" | grep -E '^[A-Z_]+=')"
trap '"$LAB" stop --release "$RELEASE" >/dev/null 2>&1 || true' EXIT
"$LAB" submit --release "$RELEASE" >/dev/null

echo
echo "Slurm $SLURM_VERSION is up; slurmrestd at $SLURMRESTD_URL"
echo "metrics:  http://$LISTEN/metrics    (Ctrl-C stops the exporter and the cluster)"
echo "try:      $LAB exec --release $RELEASE -- squeue"
echo
cd "$TOP"
# Not exec: the EXIT trap must run after the exporter stops, to stop the cluster.
slurm-exporter --slurmrestd-url "$SLURMRESTD_URL" --jwt-key-file "$SLURM_JWT_KEY" \
  --jwt-user "$SLURM_JWT_USER" --listen-address "$LISTEN" --interval 15 || true

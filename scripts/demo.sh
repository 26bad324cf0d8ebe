#!/usr/bin/env bash
# demo.sh - a live demo: a one-node Slurm cluster (26.05 by default, 5 CPUs, 4 fake GPUs) fed
# by a small stream of jobs that run, complete, fail, time out, pend and get cancelled, and
# slurm-exporter reading it with auto-renewed tokens on http://127.0.0.1:9341.
#
#   scripts/demo.sh [--release 22.05|24.11|26.05] [--listen-address ADDR]   (Ctrl-C stops all)
#   scripts/demo.sh stop                                                  (if anything is left)
#
# Needs root (the lab uses namespaces and a debootstrap chroot); installs what it needs
# (scripts/ci-setup.sh: apt packages, and the project venv .venv the exporter runs from).
# Any signal (Ctrl-C, a closed terminal, kill) stops the exporter, the job stream and the
# cluster; the exit status is the exporter's (non-zero when it could not start).
# The lab honours SLURMLAB_CACHE and SLURMLAB_PORT (scripts/slurmlab.sh); DEMO_EXPORTER
# replaces the exporter command (default: .venv/bin/slurm-exporter).
set -euo pipefail

HERE=$(dirname "$(readlink -f "$0")")
TOP=$(dirname "$HERE")
LAB="$HERE/slurmlab.sh"
RELEASE=26.05
LISTEN=127.0.0.1:9341
read -ra EXPORTER <<<"${DEMO_EXPORTER:-$TOP/.venv/bin/slurm-exporter}"

# the release, then the pids of the job stream and the exporter, for `stop`
PIDS=/run/slurm-exporter-demo${SLURMLAB_PORT:+-$SLURMLAB_PORT}.pids

if [ "${1:-}" = stop ]; then
  [ -f "$PIDS" ] || { echo "demo.sh: no demo is running"; exit 0; }
  { read -r RELEASE; while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done; } < "$PIDS"
  rm -f "$PIDS"
  exec "$LAB" stop --release "$RELEASE"
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
[ -x "$(command -v "${EXPORTER[0]}")" ] || bash "$HERE/ci-setup.sh"
# fail before starting a cluster when the address is taken (a demo still running?)
host=${LISTEN%:*} host=${host#[} host=${host%]}
case $host in ""|0.0.0.0) host=127.0.0.1;; ::) host=::1;; esac
if (exec 3<>"/dev/tcp/$host/${LISTEN##*:}") 2>/dev/null; then
  echo "demo.sh: $LISTEN is in use (a demo still running? make demo-stop; or --listen-address)" >&2
  exit 1
fi

STREAM="" SERVER=""
cleanup() {   # once, on any exit: the exporter (it stops its collection process), the stream, the cluster
  trap - EXIT HUP INT TERM
  set +e   # each step regardless (the exporter may be gone already: a HUP reaches it too)
  [ -z "$SERVER" ] || { kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
  [ -z "$STREAM" ] || { kill -TERM "$STREAM" 2>/dev/null; wait "$STREAM" 2>/dev/null; }
  rm -f "$PIDS"
  "$LAB" stop --release "$RELEASE" >/dev/null 2>&1 || true
}
stopped() {   # a signal: Ctrl-C (INT) is the way to stop the demo, anything else is reported
  cleanup
  [ "$1" = 2 ] && exit 0
  exit $((128 + $1))
}
trap cleanup EXIT
trap 'stopped 1' HUP
trap 'stopped 2' INT
trap 'stopped 15' TERM

"$LAB" stop --release "$RELEASE" >/dev/null 2>&1 || true
eval "$("$LAB" start --release "$RELEASE" --gpus | grep -E '^[A-Z_]+=')"

# A job every ~8 s (about what 5 CPUs get through), so the counters keep moving:
# mostly short sleeps, some failures, time-outs, GPU jobs, held and cancelled ones.
stream() {
  local n=0 pending
  trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM   # and the sleep or sbatch under way
  sbatch() { "$LAB" exec --release "$RELEASE" ${user:+--user "$user"} -- sbatch -Q -o /dev/null "$@" >/dev/null 2>&1 || true; }
  while true; do
    n=$((n + 1)); user=""
    pending=$("$LAB" exec --release "$RELEASE" -- squeue -h -t pending -o %i 2>/dev/null | wc -l || echo 0)
    if [ "$pending" -lt 12 ]; then
      case $((RANDOM % 10)) in
        0) sbatch -J fails --wrap "sleep $((RANDOM % 20)); exit 3";;
        1) sbatch -J times_out -p batch -t 1 --wrap 'sleep 600';;
        2) sbatch -J gpu --gpus=1 --wrap "sleep $((RANDOM % 60 + 20))";;
        3) sbatch -J held -H --wrap 'true';;
        4) user=alice sbatch -J alice -p batch -t 10 --wrap "sleep $((RANDOM % 40 + 5))";;
        *) sbatch -J work --wrap "sleep $((RANDOM % 50 + 5))";;
      esac
    fi
    if [ $((n % 6)) = 0 ]; then   # cancel the oldest held job now and then
      "$LAB" exec --release "$RELEASE" -- scancel --state=pending --name=held >/dev/null 2>&1 || true
    fi
    sleep 8 &
    wait $!
  done
}
stream </dev/null >/dev/null 2>&1 &
STREAM=$!
printf '%s\n%s\n' "$RELEASE" "$STREAM" > "$PIDS"

echo
echo "Slurm $SLURM_VERSION is up; slurmrestd at $SLURMRESTD_URL; a job every ~8 s"
echo "metrics:  http://$LISTEN/metrics    (Ctrl-C stops the exporter and the cluster)"
echo "try:      $LAB exec --release $RELEASE -- squeue"
echo
cd "$TOP"
# Not exec: the traps must run after the exporter stops, to stop the cluster.
"${EXPORTER[@]}" --slurmrestd-url "$SLURMRESTD_URL" --jwt-key-file "$SLURM_JWT_KEY" \
  --jwt-user "$SLURM_JWT_USER" --listen-address "$LISTEN" --interval 15 &
SERVER=$!
echo "$SERVER" >> "$PIDS"
status=0
wait "$SERVER" || status=$?
SERVER=""
[ "$status" = 0 ] || echo "demo.sh: the exporter exited with status $status; stopping the cluster" >&2
exit "$status"

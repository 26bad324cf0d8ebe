#!/usr/bin/env bash
# conformance-report.sh - per release, the exporter's --once counts beside sinfo, squeue and
# scontrol -d on a fresh lab with GPUs and slurmdbd (what tests/integration asserts, printed).
#   scripts/conformance-report.sh [RELEASE...]   (default: 22.05 24.11 26.05; needs root)
set -u
OUT=$(mktemp -d)
cd "$(dirname "$(readlink -f "$0")")/.." || exit 1
releases=("$@"); [ ${#releases[@]} -gt 0 ] || releases=(22.05 24.11 26.05)
for R in "${releases[@]}"; do
  bash scripts/slurmlab.sh stop --release "$R" >/dev/null 2>&1
  bash scripts/slurmlab.sh start --release "$R" --gpus --with-slurmdbd >/dev/null 2>&1
  bash scripts/slurmlab.sh submit --release "$R" --gpus >/dev/null 2>&1
  eval "$(bash scripts/slurmlab.sh env --release "$R")"
  python3 -m exporter --once --slurmrestd-url "$SLURMRESTD_URL" --jwt-key-file "$SLURM_JWT_KEY" --jwt-user "$SLURM_JWT_USER" > "$OUT"/once-$R.prom 2>"$OUT"/once-$R.err; rc=$?
  echo "== $R (Slurm $SLURM_VERSION): exit $rc; $(grep -o 'api_version="[^"]*"' "$OUT"/once-$R.prom)"
  echo "exporter jobs:  $(grep '^slurm_jobs_by_state{' "$OUT"/once-$R.prom | sed 's/slurm_jobs_by_state{partition="\([^"]*\)",state="\([^"]*\)"} \([0-9]*\).0/\2\/\1=\3/' | sort | tr '\n' ' ')"
  echo "squeue jobs:    $(bash scripts/slurmlab.sh exec --release "$R" -- squeue -h -t all -o '%T|%P' | tr 'A-Z' 'a-z' | sort | uniq -c | awk '{split($2,a,"|"); printf "%s/%s=%s ", a[1], a[2], $1}')"
  echo "exporter nodes: $(grep '^slurm_nodes_by_state{' "$OUT"/once-$R.prom | sed 's/slurm_nodes_by_state{state="\([^"]*\)"} \([0-9]*\).0/\1=\2/' | tr '\n' ' ') cpus: $(grep -E '^slurm_cpus(_configured)?[{ ]' "$OUT"/once-$R.prom | sed 's/slurm_//' | tr '\n' ' ')"
  echo "sinfo nodes:    $(bash scripts/slurmlab.sh exec --release "$R" -- sinfo -h -N -o '%N %T' | sort -u | awk '{print $2}' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}') scontrol: $(bash scripts/slurmlab.sh exec --release "$R" -- scontrol -o show node | grep -oE 'CPUAlloc=[0-9]+|CPUTot=[0-9]+' | tr '\n' ' ')"
  echo "exporter gpus:  $(grep -E '^slurm_gpus_(configured|allocated)\{' "$OUT"/once-$R.prom | sed 's/slurm_gpus_//;s/{type="\([^"]*\)"} \([0-9]*\).0/ \1=\2/' | tr '\n' ',')"
  echo "scontrol -d:    $(bash scripts/slurmlab.sh exec --release "$R" -- scontrol -d -o show node node1 | grep -oE '(Gres|GresUsed)=[^ ]+' | tr '\n' ' ')"
  bash scripts/slurmlab.sh stop --release "$R" >/dev/null 2>&1
done

#!/usr/bin/env bash
# slurmlab.sh - a real one-node Slurm cluster on 127.0.0.1 for the exporter's lab tests.
#
# slurmctld + slurmd + slurmrestd (JWT auth), optionally slurmdbd + MariaDB, run from a
# Debian chroot inside private mount/UTS/PID namespaces (unshare): no systemd, docker or
# cgroups.  Needs root.  Several releases can run side by side.
#
# usage: scripts/slurmlab.sh COMMAND [--release 22.05|24.11|26.05] [options]
#   start [--port P] [--gpus] [--with-slurmdbd] [--unix-socket] [--private-data WHAT]
#         [--native-metrics] [--cpus N]
#         build the chroot once (cached), start a fresh cluster, wait until node1 is idle
#         and slurmrestd answers, print the KEY=VALUE lines below
#   stop                 stop the cluster; nothing to do when it is not running
#   status               one line; exit 0 when running, 3 when not
#                        (stop and status also take --release all)
#   env                  print the KEY=VALUE lines of the running cluster
#   exec [--user NAME] -- CMD ARGS...    run sbatch, squeue, scontrol... in the cluster
#   submit [--gpus]      submit the test job mix to a fresh cluster, wait until the queue
#                        is quiet (no transient states, nothing changing), print it
#   token [--lifespan SECONDS] [--user NAME]   print an HS256 JWT (default 3600 s, exporter)
#   stop-ctld | start-ctld   stop / start again only slurmctld (slurmrestd stays up)
#   stop-dbd | start-dbd     stop / start again only slurmdbd (--with-slurmdbd; slurmctld keeps
#                        its records for slurmdbd and sends them when it is back)
#
#   --gpus           node1 gets fake GPUs gpu:a100:2,gpu:h100:2 (and 5 CPUs, 1300 MB)
#   --with-slurmdbd  MariaDB + slurmdbd; only then gres/gpu appears in TRES strings
#   --unix-socket    slurmrestd also listens on a UNIX socket (SLURMRESTD_SOCKET)
#   --spare-nodes    two more nodes, spare[1-2], alone in partition spare and without a
#                    slurmd (NodeAddr 127.0.0.2), out from the start: spare1 drained, spare2
#                    down, with reasons set by root (scontrol update); tests may drain/down
#                    them again while node1 runs the job mix; no job goes there
#                    (SLURMLAB_SPARE_NODES)
#   --cpus N         node1 declares N CPUs (and 100 MB each, at least 1000 MB) whatever the
#                    VM has, for load runs of many short jobs (benchmarks/accounting_load.py);
#                    the job mix of `submit` expects the default (SLURMLAB_CPUS)
#   --private-data WHAT   PrivateData=WHAT in slurm.conf (e.g. jobs, or jobs,nodes): users
#                    below Operator see only their own jobs (SLURMLAB_PRIVATE_DATA)
#   --native-metrics MetricsType=metrics/openmetrics (Slurm 25.11+): slurmctld serves its own
#                    metrics on its port, SLURMCTLD_METRICS_URL (SLURMLAB_NATIVE_METRICS)
#
#   release  Debian    slurmrestd  slurmctld  slurmd  slurmdbd
#   26.05    forky     6820        6817       6818    6819      (the default)
#   24.11    trixie    6830        6837       6838    6839
#   22.05    bookworm  6840        6847       6848    6849
#   --port P moves them all: P, P+7, P+8, P+9 (default $SLURMLAB_PORT; with another SLURMLAB_CACHE, a second copy
#   of a release can run)
#
# Printed by start and env: SLURM_RELEASE, SLURM_VERSION, SLURMRESTD_URL, SLURMRESTD_SOCKET
# (with --unix-socket), SLURM_JWT_KEY (host path of the key), SLURM_JWT_USER=exporter, and
# SLURMLAB_GPUS, SLURMLAB_SLURMDBD (0/1), SLURMLAB_PRIVATE_DATA, SLURMLAB_CHROOT, SLURMLAB_LOGS.
# slurmctld pings node1 every 10 s (SlurmdTimeout=30), so its record (CPU load, free
# memory) changes every few cycles as on a real cluster, where some node answers a ping
# nearly every cycle.
# Users in the cluster: root, exporter (the exporter's tokens), alice (a second job owner).
#
# Files: chroot $SLURMLAB_CACHE/<release> (default /var/cache/slurm-exporter-lab), built once
# with debootstrap from the host's Debian mirror (override: SLURMLAB_MIRROR); delete it to
# rebuild.  Pid file, env file, logs of the build and of the namespace init:
# $SLURMLAB_CACHE/<release>.run/.  Daemon logs: SLURMLAB_LOGS.  Jobs, state and the
# accounting database are wiped on every start; the keys are kept.
# Timings: scripts/README.md.
set -euo pipefail

SELF=$(readlink -f "$0")
CACHE=${SLURMLAB_CACHE:-/var/cache/slurm-exporter-lab}
IN=/var/lib/slurmlab     # runtime dir inside the chroot (state, logs, pid files, socket)
JWT_USER=exporter
RELEASES=(26.05 24.11 22.05)
PATH_IN=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "slurmlab: $*" >&2; }
die() { echo "slurmlab: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$SELF"; }

set_release() {
  RELEASE=$1
  local ports
  case $RELEASE in
    26.05) SUITE=forky; ports=(6820 6817 6818 6819);;
    24.11) SUITE=trixie; ports=(6830 6837 6838 6839);;
    22.05) SUITE=bookworm; ports=(6840 6847 6848 6849);;
    *) die "unknown release '$RELEASE' (one of: ${RELEASES[*]})";;
  esac
  [ -z "$PORT_OPT" ] || ports=("$PORT_OPT" $((PORT_OPT + 7)) $((PORT_OPT + 8)) $((PORT_OPT + 9)))
  RESTD_PORT=${ports[0]} CTLD_PORT=${ports[1]} SLURMD_PORT=${ports[2]} DBD_PORT=${ports[3]}
  ROOT=$CACHE/$RELEASE RUN=$CACHE/$RELEASE.run
}

# ------------------------------------------------------------ the running cluster
init_pid() {   # print the namespace init's pid if this release's lab runs (and it is ours)
  local pid args
  pid=$(cat "$RUN/init.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  grep -qx _init <<<"$args" && grep -qxF "$ROOT" <<<"$args" || return 1
  echo "$pid"
}
need_running() {
  INIT=$(init_pid) || die "the $RELEASE lab is not running (scripts/slurmlab.sh start --release $RELEASE)"
}

run_in() {   # run_in USER CMD...: CMD in the cluster's namespaces and chroot, as USER
  local user=$1 home=/root spec=() limit=()
  shift
  [ "$user" = root ] || { home=/tmp; spec=(--userspec="$user:$user"); }
  [ -z "${LAB_TIMEOUT:-}" ] || limit=(timeout "$LAB_TIMEOUT")
  "${limit[@]}" nsenter -t "$INIT" -m -u -p -- chroot "${spec[@]}" "$ROOT" \
    /usr/bin/env -i -C "$home" PATH="$PATH_IN" HOME="$home" USER="$user" LANG=C.UTF-8 "$@"
}
q() { LAB_TIMEOUT=10 run_in root "$@"; }   # a query that must not hang (slurmctld may be down)

env_value() { sed -n "s/^$1=//p" "$RUN/env" 2>/dev/null; }

daemon_pid() {   # daemon_pid NAME: host pid of a live child of our namespace init (daemons reparent to it)
  local c state kids=()
  read -ra kids < <(cat /proc/"$INIT"/task/*/children 2>/dev/null) || true
  for c in "${kids[@]}"; do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$1" ] || continue
    state=$(sed 's/.*) //' "/proc/$c/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ] && { echo "$c"; return 0; }
  done
  return 1
}

ctld_pid() { daemon_pid slurmctld; }
ctld_up() { q scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { q sinfo -h -p debug -n node1 -o %T 2>/dev/null || true; }

lock() { mkdir -p "$RUN"; exec 9>"$RUN/lock"; flock -w 900 9 || die "another slurmlab command holds $RUN/lock"; }

# ------------------------------------------------------------ building the chroot
host_tools() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ -s /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
  command -v curl >/dev/null || need+=(curl)
  if ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null; then die "unshare/nsenter (util-linux) are missing"; fi
  [ ${#need[@]} = 0 ] && return 0
  say "installing on the host: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

debian_mirror() {   # the host's own Debian mirror, else deb.debian.org
  local m=${SLURMLAB_MIRROR:-}
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' || true)
  m=${m:-http://deb.debian.org/debian}
  echo "${m%/}"
}

in_build_root() {   # in_build_root DIR CMD...: CMD chrooted in DIR with a /proc; strays die with the PID namespace
  local dir=$1
  shift
  # shellcheck disable=SC2016 # $0 and $@ belong to sh
  DEBIAN_FRONTEND=noninteractive unshare --mount --pid --fork --propagation private \
    sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$dir" "$@"
}

failed_step() { tail -n 25 "$1" >&2; die "$2 (full log: $1)"; }

ensure_chroot() {
  local pkgs=(slurmctld slurmd slurmrestd slurm-client slurm-wlm-jwt-plugin procps) t0=$SECONDS
  [ "$SUITE" != bookworm ] || pkgs+=(munge)   # 22.05 has no auth/slurm yet
  if [ ! -f "$ROOT/.slurmlab-base" ]; then
    local tmp=$ROOT.partial script=/usr/share/debootstrap/scripts/$SUITE mirror
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid   # bookworm's debootstrap knows no forky
    mirror=$(debian_mirror)
    rm -rf --one-file-system "$tmp" "$ROOT"
    say "building the $SUITE chroot in $ROOT (debootstrap from $mirror)"
    debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$SUITE" "$tmp" "$mirror" "$script" >"$RUN/build.log" 2>&1 || failed_step "$RUN/build.log" "debootstrap failed"
    # testing suites on snapshot-like mirrors can carry an expired Release file
    echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99slurmlab"
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"   # packages must not start daemons
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    say "installing ${pkgs[*]}"
    { in_build_root "$tmp" apt-get update && in_build_root "$tmp" apt-get install -y --no-install-recommends "${pkgs[@]}"
    } >>"$RUN/build.log" 2>&1 || failed_step "$RUN/build.log" "apt-get install in the chroot failed"
    touch "$tmp/.slurmlab-base"
    mv "$tmp" "$ROOT"
    say "chroot built in $((SECONDS - t0))s"
  fi
  if [ "$WITH_DBD" = 1 ] && [ ! -f "$ROOT/.slurmlab-dbd" ]; then
    say "installing slurmdbd and mariadb-server in the chroot"
    in_build_root "$ROOT" apt-get install -y --no-install-recommends slurmdbd mariadb-server mariadb-client \
      >>"$RUN/build.log" 2>&1 || failed_step "$RUN/build.log" "apt-get install slurmdbd failed"
    touch "$ROOT/.slurmlab-dbd"
  fi
}

# ------------------------------------------------------------ configuration
secret() {   # secret PATH BYTES OWNER MODE: random key, made once, kept across starts
  [ -s "$ROOT$1" ] || head -c "$2" /dev/urandom >"$ROOT$1"
  chroot "$ROOT" chown "$3" "$1"
  chmod "$4" "$ROOT$1"
}

configure() {
  local v maj min auth acct="AccountingStorageType=accounting_storage/none" gres="" node="CPUs=2 RealMemory=1000"
  local private=""
  [ -z "$PRIVATE" ] || private="PrivateData=$PRIVATE"
  # shellcheck disable=SC2016 # a dpkg-query format
  v=$(chroot "$ROOT" dpkg-query -W -f='${Version}' slurmctld)
  v=${v#*:} VERSION=${v%%-*}
  [ "${VERSION%.*}" = "$RELEASE" ] || say "warning: Debian $SUITE now ships Slurm $VERSION, not $RELEASE"
  IFS=. read -r maj min _ <<<"$VERSION"
  local metrics=""   # slurmctld's own /metrics/* (src/slurmctld/http.c, 25.11+)
  if [ "$NATIVE" = 1 ]; then
    ((10#$maj * 100 + 10#$min >= 2511)) || die "--native-metrics needs Slurm 25.11+, not $VERSION"
    metrics="MetricsType=metrics/openmetrics"
  fi

  local u
  for u in slurmrest:2001 exporter:2002 alice:2003; do
    chroot "$ROOT" getent passwd "${u%:*}" >/dev/null ||
      chroot "$ROOT" useradd -u "${u#*:}" -U -M -d /tmp -s /bin/sh "${u%:*}"
  done
  # slurmd resolves its own host name (NoInAddrAny); the namespace's host name is node1
  printf '127.0.0.1\tlocalhost node1\n' >"$ROOT/etc/hosts"

  secret /etc/slurm/jwt_hs256.key 32 slurm:slurm 0600
  if ((10#$maj * 100 + 10#$min >= 2311)); then
    auth=$'AuthType=auth/slurm\nCredType=cred/slurm' MUNGE=0
    secret /etc/slurm/slurm.key 1024 slurm:slurm 0600
  else
    auth=$'AuthType=auth/munge\nCredType=cred/munge' MUNGE=1
    mkdir -p "$ROOT/etc/munge"
    secret /etc/munge/munge.key 1024 munge:munge 0400
  fi

  rm -rf --one-file-system "${ROOT:?}$IN"
  mkdir -p "$ROOT$IN"/{state,spool,log,run,sock,dev}
  chroot "$ROOT" chown slurm:slurm "$IN/state" "$IN/run"
  chroot "$ROOT" chown slurmrest:slurmrest "$IN/sock"   # slurmrestd binds it after dropping root
  chmod 1777 "$ROOT$IN/log"   # slurm, root and mysql write logs here

  rm -f "$ROOT/etc/slurm/slurmdbd.conf" "$ROOT/etc/slurm/gres.conf"
  if [ "$WITH_DBD" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=node1
AccountingStoragePort=$DBD_PORT"
    cat >"$ROOT/etc/slurm/slurmdbd.conf" <<EOF
# written by scripts/slurmlab.sh
${auth%%$'\n'*}
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key
DbdHost=node1
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
CommunicationParameters=NoInAddrAny
SlurmUser=slurm
LogFile=$IN/log/slurmdbd.log
PidFile=$IN/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmlab
StorageLoc=slurm_acct_db
EOF
    chroot "$ROOT" chown slurm:slurm /etc/slurm/slurmdbd.conf
    chmod 0600 "$ROOT/etc/slurm/slurmdbd.conf"
  fi
  if [ "$GPUS" = 1 ]; then
    # no hardware: placeholder char devices with /dev/null's numbers under $IN/dev (the
    # chroot's /dev is the host's, bind-mounted); more CPUs than the VM has, so three
    # 1-CPU GPU jobs fit beside the plain job mix (SlurmdParameters=config_overrides)
    local i
    for i in 0 1 2 3; do mknod -m 0666 "$ROOT$IN/dev/nvidia$i" c 1 3 || : >"$ROOT$IN/dev/nvidia$i"; done
    cat >"$ROOT/etc/slurm/gres.conf" <<EOF
# written by scripts/slurmlab.sh --gpus: fake GPUs
AutoDetect=off
NodeName=node1 Name=gpu Type=a100 File=$IN/dev/nvidia[0-1]
NodeName=node1 Name=gpu Type=h100 File=$IN/dev/nvidia[2-3]
EOF
    node="CPUs=5 RealMemory=1300 Gres=gpu:a100:2,gpu:h100:2"
    gres="GresTypes=gpu"
    # without slurmdbd slurmctld refuses this ("slurmdbd is required to run with TRES gres/gpu")
    [ "$WITH_DBD" = 0 ] || gres+=$'\nAccountingStorageTRES=gres/gpu,gres/gpu:a100,gres/gpu:h100'
  fi
  if [ -n "$CPUS" ]; then   # SlurmdParameters=config_overrides: slurmd accepts more than the VM has
    local gpus=""
    [[ $node != *Gres=* ]] || gpus=" Gres=${node##*Gres=}"
    node="CPUs=$CPUS RealMemory=$((CPUS * 100 > 1000 ? CPUS * 100 : 1000))$gpus"
  fi
  local spare=""
  if [ "$SPARE" = 1 ]; then   # nothing listens on 127.0.0.2: slurmctld's pings fail, they stay down
    spare='NodeName=spare[1-2] NodeAddr=127.0.0.2 CPUs=1 RealMemory=100 State=DOWN Reason="lab: spare node without slurmd"'
    spare+=$'\nPartitionName=spare Nodes=spare[1-2] MaxTime=INFINITE State=UP'
  fi
  cat >"$ROOT/etc/slurm/slurm.conf" <<EOF
# written by scripts/slurmlab.sh: one node, loopback only, no cgroups
ClusterName=slurmlab
SlurmctldHost=node1(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=slurm
$auth
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key
StateSaveLocation=$IN/state
SlurmdSpoolDir=$IN/spool
SlurmctldPidFile=$IN/run/slurmctld.pid
SlurmdPidFile=$IN/run/slurmd.pid
SlurmctldLogFile=$IN/log/slurmctld.log
SlurmdLogFile=$IN/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=10
PriorityType=priority/multifactor
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
MinJobAge=86400
JobCompType=jobcomp/none
$acct
$gres
$private
$metrics
Licenses=matlab:5,fluent:2
SlurmdParameters=config_overrides
NodeName=node1 NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=node1 Default=YES MaxTime=INFINITE State=UP
PartitionName=batch Nodes=node1 MaxTime=12:00:00 State=UP
$spare
EOF
  chmod 0644 "$ROOT/etc/slurm/slurm.conf"
}

restd_plugins() {   # openapi plugins to load: the slurmdbd ones fail to load without slurmdbd
  local f n list=""
  for f in "$ROOT"/usr/lib/*/slurm-wlm/openapi_*.so; do
    n=${f##*/openapi_} n=${n%.so}
    case $n in slurmdbd|dbv*) [ "$WITH_DBD" = 1 ] || continue;; esac
    case $n in v0_*|dbv0_*) n=${n//_/.};; esac   # 22.05: openapi/v0.0.38, openapi/dbv0.0.38
    list+=${list:+,}openapi/$n
  done
  echo "$list"
}

# ------------------------------------------------------------ namespace init (PID 1)
# Runs outside the chroot, in the lab's own mount/UTS/PID namespaces; its mounts vanish with
# them.  Daemons daemonize and so become its children; on TERM it signals everything in the
# namespace, waits briefly and exits, and the kernel kills whatever is left (job steps).
lab_init() {
  local root=$1 hostpid logs=$1$IN/log
  set +e
  read -r hostpid _ </proc/self/stat   # /proc is still the host's here
  echo "$hostpid" >"$root.run/init.pid"
  ch() { chroot "$root" "$@"; }
  waitfor() {   # waitfor SECONDS CMD...
    local n=$(($1 * 2))
    shift
    until timeout 5 "$@" >/dev/null 2>&1; do ((--n > 0)) || { echo "timed out: $*"; return 1; }; sleep 0.5; done
  }
  hostname node1
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  mkdir -p "$root"/run/{slurm,slurmctld,slurmdbd,munge,mysqld}   # /run/slurm stays root's (26.05 slurmd)
  ch chown slurm:slurm /run/slurmctld /run/slurmdbd
  trap 'lab_shutdown "$root"' TERM INT
  echo "$(date +%T) starting daemons"

  if [ "$LAB_MUNGE" = 1 ]; then
    ch chown munge:munge /run/munge
    chroot --userspec=munge:munge "$root" /usr/sbin/munged >>"$logs/munged.out" 2>&1
  fi
  if [ "$LAB_DBD" = 1 ]; then
    ch chown mysql:mysql /run/mysqld
    ch mariadb-install-db --user=mysql --datadir="$IN/mysql" --skip-test-db \
      --auth-root-authentication-method=socket >>"$logs/mariadb-install.out" 2>&1
    chroot "$root" /usr/sbin/mariadbd --user=mysql --datadir="$IN/mysql" --skip-networking \
      --socket=/run/mysqld/mysqld.sock --log-error="$IN/log/mariadb.log" >>"$logs/mariadb.out" 2>&1 &
    waitfor 60 chroot "$root" mariadb -e 'select 1'
    ch mariadb -e "CREATE DATABASE slurm_acct_db; CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurmlab';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    ch /usr/sbin/slurmdbd >>"$logs/slurmdbd.out" 2>&1
    waitfor 60 chroot "$root" sacctmgr -n list cluster
    ch sacctmgr -i add cluster slurmlab >/dev/null
  fi
  ch /usr/sbin/slurmctld >>"$logs/slurmctld.out" 2>&1
  waitfor 60 chroot "$root" sh -c 'scontrol ping | grep -q "is UP"'
  if [ "$LAB_DBD" = 1 ]; then   # associations, so that shares and slurmdb endpoints have data
    ch sacctmgr -i add account science,physics Organization=lab >/dev/null
    ch sacctmgr -i add user root,exporter account=science >/dev/null
    ch sacctmgr -i add user alice account=physics >/dev/null
  fi
  ch /usr/sbin/slurmd >>"$logs/slurmd.out" 2>&1
  # slurmrestd refuses to run as root or SlurmUser: it binds, then becomes slurmrest
  local addrs
  read -ra addrs <<<"$LAB_LISTEN"
  SLURM_JWT=daemon chroot "$root" /usr/sbin/slurmrestd -s "$LAB_PLUGINS" -a rest_auth/jwt \
    -u slurmrest -g slurmrest "${addrs[@]}" >>"$logs/slurmrestd.log" 2>&1 &
  echo "$(date +%T) daemons started"
  while :; do
    sleep 3600 &
    wait $!
  done
}

# shellcheck disable=SC2317 # called from a trap
lab_shutdown() {   # TERM to all in the namespace; wait for the daemons (not for job steps: they ignore it)
  local root=$1 p comm stat busy
  echo "$(date +%T) stopping"
  kill -s TERM -- -1   # everyone in this PID namespace but us
  for _ in $(seq 40); do
    busy=""
    for p in "$root"/proc/[0-9]*; do   # builtins only: no subshell of ours in the list
      if ! read -r comm 2>/dev/null <"$p/comm" || ! read -r stat 2>/dev/null <"$p/stat"; then continue; fi
      stat=${stat##*) }
      case $comm in slurmctld|slurmd|slurmdbd|slurmrestd|mariadbd|munged) [ "${stat:0:1}" = Z ] || busy+=" $comm";; esac
    done
    [ -n "$busy" ] || break
    sleep 0.25
  done
  [ -z "$busy" ] || echo "still running after 10 s:$busy"
  exit 0   # the kernel kills whatever is left in the namespace
}

# ------------------------------------------------------------ commands
cmd_start() {
  lock
  if INIT=$(init_pid); then die "the $RELEASE lab is already running (init pid $INIT); stop it first"; fi
  local p ports=("$RESTD_PORT" "$CTLD_PORT" "$SLURMD_PORT") t0=$SECONDS
  [ "$WITH_DBD" = 0 ] || ports+=("$DBD_PORT")
  for p in "${ports[@]}"; do
    ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || die "port $p on 127.0.0.1 is in use"
  done
  host_tools
  ensure_chroot
  configure
  local url=http://127.0.0.1:$RESTD_PORT sock="" listen="127.0.0.1:$RESTD_PORT"
  if [ "$SOCKET" = 1 ]; then
    sock=$ROOT$IN/sock/slurmrestd.sock
    listen+=" unix:$IN/sock/slurmrestd.sock"
  fi
  say "starting Slurm $VERSION (slurmrestd $url${sock:+ and $sock})"
  rm -f "$RUN/init.pid" "$RUN/env"
  local plugins fd
  plugins=$(restd_plugins)
  (
    # the lab outlives this command: it must not hold the caller's pipes (or our lock) open
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      ((fd <= 2 || fd == 255)) || eval "exec $fd>&-" 2>/dev/null || true
    done
    exec env -i PATH="$PATH_IN" LAB_LISTEN="$listen" LAB_PLUGINS="$plugins" LAB_DBD="$WITH_DBD" LAB_MUNGE="$MUNGE" \
      setsid unshare --mount --uts --pid --fork --propagation private bash "$SELF" _init "$ROOT" \
      </dev/null >"$RUN/init.log" 2>&1
  ) &
  for _ in $(seq 100); do INIT=$(init_pid) && break; sleep 0.1; done
  [ -n "${INIT:-}" ] || die "the namespace init did not start; see $RUN/init.log"

  local state="" code="" scode=ok ready=0
  for _ in $(seq 240); do
    init_pid >/dev/null || break
    if grep -q 'daemons started' "$RUN/init.log" && ! daemon_pid slurmrestd >/dev/null; then
      state="$state, slurmrestd exited" && break
    fi
    state=$(node_state)
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/openapi/v3" || true)
    [ -z "$sock" ] || scode=$(curl -s -o /dev/null -m 2 -w '%{http_code}' --unix-socket "$sock" http://localhost/openapi/v3 || true)
    if [[ $state =~ ^(idle|mixed|allocated)$ ]] && [ "$code" != 000 ] && [ "$scode" != 000 ]; then ready=1; break; fi
    sleep 0.5
  done
  if [ "$ready" = 0 ]; then
    say "not ready: node1 state \"$state\", slurmrestd HTTP $code${sock:+, socket HTTP $scode}"
    tail -n 5 "$RUN/init.log" "$ROOT$IN"/log/* >&2 || true
    cmd_stop >&2
    die "start failed; logs in $ROOT$IN/log and $RUN/init.log"
  fi
  [ -z "$sock" ] || chmod 0666 "$sock"   # for unprivileged test clients; JWT still required
  if [ "$SPARE" = 1 ]; then   # reasons with a time and a user (slurm.conf's have neither)
    run_in root scontrol update nodename=spare1 state=drain reason="lab: spare node drained" >/dev/null
    run_in root scontrol update nodename=spare2 state=down reason="lab: spare node without slurmd" >/dev/null
  fi
  {
    echo "SLURM_RELEASE=$RELEASE"
    echo "SLURM_VERSION=$VERSION"
    echo "SLURMRESTD_URL=$url"
    [ -z "$sock" ] || echo "SLURMRESTD_SOCKET=$sock"
    echo "SLURM_JWT_KEY=$ROOT/etc/slurm/jwt_hs256.key"
    echo "SLURM_JWT_USER=$JWT_USER"
    echo "SLURMLAB_GPUS=$GPUS"
    echo "SLURMLAB_SLURMDBD=$WITH_DBD"
    echo "SLURMLAB_PRIVATE_DATA=$PRIVATE"
    echo "SLURMLAB_SPARE_NODES=$SPARE"
    echo "SLURMLAB_NATIVE_METRICS=$NATIVE"
    [ "$NATIVE" = 0 ] || echo "SLURMCTLD_METRICS_URL=http://127.0.0.1:$CTLD_PORT/metrics"
    echo "SLURMLAB_CPUS=$CPUS"
    echo "SLURMLAB_CHROOT=$ROOT"
    echo "SLURMLAB_LOGS=$ROOT$IN/log"
  } >"$RUN/env"
  say "ready in $((SECONDS - t0)) s"
  cat "$RUN/env"
}

cmd_stop() {
  lock
  local pid
  if ! pid=$(init_pid); then
    rm -f "$RUN/init.pid" "$RUN/env"
    echo "slurmlab $RELEASE: not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 60); do init_pid >/dev/null || break; sleep 0.25; done
  if init_pid >/dev/null; then
    say "init $pid still alive after 15 s: SIGKILL"
    kill -KILL "$pid"
  fi
  rm -f "$RUN/init.pid" "$RUN/env"
  echo "slurmlab $RELEASE: stopped"
}

cmd_status() {
  if ! INIT=$(init_pid); then echo "slurmlab $RELEASE: stopped"; return 3; fi
  local ctld=DOWN node url code
  ! ctld_up || ctld=UP
  node=$(node_state)
  url=$(env_value SLURMRESTD_URL)
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/openapi/v3" || true)
  echo "slurmlab $RELEASE: running (init pid $INIT), Slurm $(env_value SLURM_VERSION), slurmctld $ctld," \
    "node1 ${node:-?}, slurmrestd $url HTTP $code (no token)"
}

cmd_stop_ctld() {
  need_running
  lock
  local pid
  pid=$(ctld_pid) || { echo "slurmlab $RELEASE: slurmctld is not running"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 120); do ctld_pid >/dev/null || break; sleep 0.25; done
  ! ctld_pid >/dev/null || die "slurmctld (pid $pid) did not stop within 30 s"
  echo "slurmlab $RELEASE: slurmctld stopped"
}

cmd_start_ctld() {
  need_running
  lock
  if ctld_pid >/dev/null; then echo "slurmlab $RELEASE: slurmctld is already running"; return 0; fi
  run_in root sh -c "exec /usr/sbin/slurmctld >>$IN/log/slurmctld.out 2>&1"   # daemonizes; keeps its saved state
  local state=""
  for _ in $(seq 120); do
    if ctld_up; then
      state=$(node_state)
      [[ $state =~ ^(idle|mixed|allocated)$ ]] && { echo "slurmlab $RELEASE: slurmctld started, node1 $state"; return 0; }
    fi
    sleep 0.5
  done
  die "slurmctld not back within 60 s (node1 '$state'); see $ROOT$IN/log/slurmctld.log"
}

need_dbd() { [ "$(env_value SLURMLAB_SLURMDBD)" = 1 ] || die "the $RELEASE lab was started without --with-slurmdbd"; }

cmd_stop_dbd() {
  need_running
  need_dbd
  lock
  local pid
  pid=$(daemon_pid slurmdbd) || { echo "slurmlab $RELEASE: slurmdbd is not running"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 120); do daemon_pid slurmdbd >/dev/null || break; sleep 0.25; done
  ! daemon_pid slurmdbd >/dev/null || die "slurmdbd (pid $pid) did not stop within 30 s"
  echo "slurmlab $RELEASE: slurmdbd stopped"
}

cmd_start_dbd() {
  need_running
  need_dbd
  lock
  if daemon_pid slurmdbd >/dev/null; then echo "slurmlab $RELEASE: slurmdbd is already running"; return 0; fi
  # daemonizes; without our lock: slurmdbd keeps the descriptors it inherits
  run_in root sh -c "exec /usr/sbin/slurmdbd >>$IN/log/slurmdbd.out 2>&1" 9>&-
  for _ in $(seq 120); do
    q sacctmgr -n list cluster >/dev/null 2>&1 && { echo "slurmlab $RELEASE: slurmdbd started"; return 0; }
    sleep 0.5
  done
  die "slurmdbd not back within 60 s; see $ROOT$IN/log/slurmdbd.log"
}

declare -A JOB=()
job() {   # job NAME USER SBATCH-ARGS...: submit, remember the id as JOB[NAME]
  local name=$1 user=$2 id
  shift 2
  id=$(run_in "$user" sbatch --parsable -J "$name" -o /dev/null -e /dev/null "$@") || die "sbatch of job $name failed"
  JOB[$name]=${id%%;*}
}

wait_for() {   # wait_for CHECK JOBIDS: poll until CHECK JOBIDS succeeds (60 s)
  for _ in $(seq 120); do "$1" "$2" && return 0; sleep 0.5; done
  die "jobs $2: '$1' not reached within 60 s"
}
# shellcheck disable=SC2317 # checks for wait_for
running() { [ -n "$(q squeue -h -t RUNNING -j "$1" -o %i)" ]; }   # (an array: one task runs)
# shellcheck disable=SC2317
finished() { ! q squeue -h -t all -j "$1" -o %T | grep -qvE '^(COMPLETED|FAILED|CANCELLED)$'; }

# node1 only: --spare-nodes' nodes stay down* (not responding) for ever
queue_snapshot() { q squeue -h -a -t all -o '%i %T %r'; q sinfo -h -N -n node1 -o '%N %T'; }

cmd_submit() {
  need_running
  lock
  [ "$GPUS" = 0 ] || [ "$(env_value SLURMLAB_GPUS)" = 1 ] || die "the $RELEASE lab was started without --gpus"
  [ -z "$(q squeue -h -a -t all -o %i)" ] || die "the queue is not empty: submit expects a fresh lab (start it again)"
  local t0=$SECONDS
  # one job after the other where it matters, so that the outcome is the same every time
  if [ "$GPUS" = 1 ]; then   # first: they get GPU a100 IDX 0, h100 IDX 2, a100 IDX 1
    job gpu_any root -n1 --gpus=1 --wrap 'sleep infinity'
    wait_for running "${JOB[gpu_any]}"
    job gpu_h100 root -n1 --gres=gpu:h100:1 --wrap 'sleep infinity'
    wait_for running "${JOB[gpu_h100]}"
    job gpu_pernode_a100 root -n1 --gpus-per-node=a100:1 --wrap 'sleep infinity'
    wait_for running "${JOB[gpu_pernode_a100]}"
  fi
  # node1 has 2 CPUs (5 with --gpus, 3 taken above) and 1000 MB (1300) at 100 MB per CPU
  job run_sleep root -n1 -L matlab:2 --wrap 'sleep infinity'
  wait_for running "${JOB[run_sleep]}"
  job fails root -n1 --wrap 'echo boom; exit 3'
  job completes root -n1 -p batch -t 5 --wrap 'true'
  wait_for finished "${JOB[fails]},${JOB[completes]}"
  job cancelled root -n1 -H --wrap 'true'
  run_in root scancel "${JOB[cancelled]}"
  job array root -n1 --array=1-3%1 --wrap 'sleep infinity'   # task 1 runs, the rest: JobArrayTaskLimit
  wait_for running "${JOB[array]}"
  # from here on node1 is full: all pending
  job pend_resources root -n2 -p batch -t 60 --wrap 'sleep infinity'
  job pend_mem root -n1 --mem=900 --wrap 'sleep infinity'
  job held root -n1 -H --wrap 'sleep infinity'
  job dep_never root -n1 --dependency="afterok:${JOB[fails]}" --wrap 'true'
  job begin_later root -n1 --begin=now+7days --wrap 'true'
  job alice_job alice -n1 -p batch -t 600 --wrap 'sleep infinity'
  if [ "$GPUS" = 1 ]; then
    job gpu_pend_h100x2 root -n1 --gpus=h100:2 --wrap 'sleep infinity'   # only one h100 is free
    job gpu_pend_all4 root -n1 --gpus-per-node=4 --wrap 'sleep infinity'
  fi
  # future reservations; the MAINT one makes pending jobs without a time limit wait with
  # ReqNodeNotAvail (ignore_jobs: running jobs overlap it)
  run_in root scontrol create reservation reservationname=maint_window starttime=now+1day duration=120 \
    nodes=node1 users=root flags=maint,ignore_jobs >/dev/null
  run_in root scontrol create reservation reservationname=alice_resv starttime=now+2days duration=60 \
    nodes=node1 users=alice flags=ignore_jobs >/dev/null

  # quiet: no transient job or node state, and the same snapshot for 4 polls in a row (> 2 backfill cycles)
  local prev="" cur same=0
  for _ in $(seq 90); do
    cur=$(queue_snapshot)
    if [ "$cur" = "$prev" ] && ! grep -qE 'COMPLETING|CONFIGURING|SIGNALING|STAGE_OUT|RESIZING|completing|\*$' <<<"$cur"; then
      ((++same < 4)) || break
    else
      same=0
    fi
    prev=$cur
    sleep 3
  done
  [ "$same" -ge 4 ] || die "the queue did not settle within 270 s"
  say "submitted and settled in $((SECONDS - t0)) s"
  local n
  for n in "${!JOB[@]}"; do echo "$n=${JOB[$n]}"; done | sort -t= -k2n
  run_in root squeue -a -t all -o '%.8i %.17j %.6u %.6P %.10T %r'
  run_in root sinfo -N -o '%N %P %T %C'
}

cmd_token() {
  local key=$ROOT/etc/slurm/jwt_hs256.key
  [ -s "$key" ] || die "no JWT key for $RELEASE yet (run start once)"
  [[ $LIFESPAN =~ ^[0-9]+$ ]] || die "--lifespan wants seconds"
  "${PYTHON:-python3}" - "$key" "${USER_OPT:-$JWT_USER}" "$LIFESPAN" <<'EOF'
import sys, time
try:
    import jwt
except ImportError:
    sys.exit("slurmlab: error: PyJWT is missing (pip install PyJWT)")
key_file, user, lifespan = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(key_file, "rb") as f:
    key = f.read()
now = int(time.time())
print(jwt.encode({"iat": now, "exp": now + lifespan, "sun": user}, key, algorithm="HS256"))
EOF
}

main() {
  if [ "${1:-}" = _init ]; then lab_init "$2"; fi
  [ $# -gt 0 ] || { usage >&2; exit 2; }
  local cmd=$1 release=26.05 rel
  shift
  case $cmd in -h|--help|help) usage; exit 0;; esac
  PORT_OPT=${SLURMLAB_PORT:-} GPUS=0 WITH_DBD=0 SOCKET=0 SPARE=0 USER_OPT="" LIFESPAN=3600 PRIVATE= NATIVE=0 CPUS=
  while [ $# -gt 0 ]; do
    case $1 in
      --release|--port|--user|--lifespan|--private-data|--cpus) [ $# -ge 2 ] || die "$1 needs a value";;&
      --release) release=$2; shift;;
      --port) [[ $2 =~ ^[0-9]+$ ]] || die "--port wants a number"; PORT_OPT=$2; shift;;
      --user) USER_OPT=$2; shift;;
      --lifespan) LIFESPAN=$2; shift;;
      --private-data) [[ $2 =~ ^[a-z,]+$ ]] || die "--private-data wants e.g. jobs or jobs,nodes"; PRIVATE=$2; shift;;
      --cpus) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--cpus wants a number"; CPUS=$2; shift;;
      --gpus) GPUS=1;;
      --with-slurmdbd) WITH_DBD=1;;
      --unix-socket) SOCKET=1;;
      --spare-nodes) SPARE=1;;
      --native-metrics) NATIVE=1;;
      -h|--help) usage; exit 0;;
      --) shift; break;;
      *) [ "$cmd" = exec ] && break; die "unknown option '$1' (see --help)";;
    esac
    shift
  done
  [ "$(id -u)" = 0 ] || die "needs root (namespaces, chroot)"
  if [ "$release" = all ]; then
    case $cmd in stop|status) ;; *) die "--release all only works with stop and status";; esac
    for rel in "${RELEASES[@]}"; do set_release "$rel"; "cmd_$cmd" || true; done
    return 0
  fi
  set_release "$release"
  case $cmd in
    start) cmd_start;;
    stop) cmd_stop;;
    status) cmd_status;;
    env) need_running; cat "$RUN/env";;
    exec) [ $# -gt 0 ] || die "exec wants a command: exec [--user NAME] -- CMD ARGS..."
          need_running; run_in "${USER_OPT:-root}" "$@";;
    submit) cmd_submit;;
    token) cmd_token;;
    stop-ctld) cmd_stop_ctld;;
    start-ctld) cmd_start_ctld;;
    stop-dbd) cmd_stop_dbd;;
    start-dbd) cmd_start_dbd;;
    *) die "unknown command '$cmd' (see --help)";;
  esac
}

main "$@"; exit   # one line: bash never reads past it, even if this file is replaced meanwhile

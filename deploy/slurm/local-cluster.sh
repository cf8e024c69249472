#!/usr/bin/env bash
# A one-node SLURM on this machine (slurmctld + slurmd + munge), for trying the SLURM recipe
# and for the tests that run it: `structfree-dask run` with `cluster: {kind: slurm}` submits
# its Dask workers with sbatch to this cluster.
#
#   sudo deploy/slurm/local-cluster.sh start     # install (Debian/Ubuntu) if needed, start
#   deploy/slurm/local-cluster.sh status         # sinfo
#   sudo deploy/slurm/local-cluster.sh stop      # cancel every job, stop the daemons
#
# Needs root (it writes /etc/slurm/slurm.conf and starts the daemons); installs the Debian
# packages slurm-wlm and munge with apt-get when sbatch is missing. The node is this host,
# with its CPUs and memory; one partition, `debug`, is the default. Everything it starts
# listens on this host only. Not for production: no accounting, no cgroups, SlurmUser root.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/structfree-slurm
LOGS=/var/log/structfree-slurm
HOST="$(hostname -s)"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: $0 $1 needs root (it configures and starts SLURM's daemons)" >&2
    exit 2
  fi
}

install() {
  if command -v sbatch >/dev/null && command -v slurmctld >/dev/null \
      && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  if ! command -v apt-get >/dev/null; then
    echo "error: sbatch is missing and there is no apt-get to install slurm-wlm and munge" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
  local cpus mem
  cpus="$(nproc)"
  mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS"
  cat > "$CONF_DIR/slurm.conf" <<EOF
# written by structfree-dask's deploy/slurm/local-cluster.sh
ClusterName=structfree
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key --force
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
}

start() {
  need_root start
  install
  configure
  if ! pgrep -x munged >/dev/null; then
    if id munge >/dev/null 2>&1; then
      runuser -u munge -- /usr/sbin/munged
    else
      /usr/sbin/munged --force
    fi
  fi
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if sinfo -h -N -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
      sinfo
      return 0
    fi
    sleep 0.5
  done
  echo "error: the SLURM node did not come up within 30 s; see $LOGS" >&2
  sinfo -N -l >&2 || true
  exit 1
}

stop() {
  need_root stop
  scancel --user="$(id -un)" 2>/dev/null || true
  scancel --state=PENDING 2>/dev/null || true
  scancel --state=RUNNING 2>/dev/null || true
  for daemon in slurmd slurmctld; do
    pkill -x "$daemon" 2>/dev/null || true
  done
  for _ in $(seq 1 20); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 0.5
  done
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests (run as root): this machine is both the controller
# (slurmctld) and the only compute node (slurmd), authenticated by munge.
#
#   cluster.sh up       write /etc/slurm/{slurm,cgroup}.conf, start munged, slurmctld, slurmd; wait
#                       until the node is idle; a no-op when already up
#   cluster.sh down     stop the three daemons (those started here, by their pid files); removes
#                       the state and the configuration
#   cluster.sh status   the node as Slurm sees it; non-zero when not usable
#   cluster.sh logs [N] the tail of each daemon's log
#
# Everything listens on 127.0.0.1 only (CommunicationParameters below). State, logs and pid files
# live under $STATE. Packages: .ci/setup-slurm.sh.
set -euo pipefail
STATE="${QWEX_SLURM_STATE:-/var/lib/qwex-slurm}"
NODE="$(hostname -s)"
CONF=/etc/slurm/slurm.conf
MUNGE_SOCKET=/run/munge/munge.socket.2

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local cpus mem
  cpus=$(nproc)
  # What slurmd may hand out: the machine's memory less 1 GiB for everything else (MiB).
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
  chown slurm:slurm "$STATE/ctld"
  cat > "$CONF.new" <<CONF
# Written by .ci/slurm/cluster.sh: the qwex test cluster, one node, loopback only.
ClusterName=qwex
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ReturnToService=2
# cgroups (v1 here: the controllers are mounted as v1) hold every process of a job, so a
# cancel or a time limit reaches all of them and a memory limit is enforced by the kernel.
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=256
# No accounting storage: no slurmdbd, so no sacct (docs/slurm.md says what that costs).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Quicker than the defaults, for every job alike (sbatch --wait as much as qwex): the
# scheduler looks at once when a job is submitted or ends; SIGTERM to SIGKILL in 5 s;
# finished jobs stay visible to scontrol for 5 minutes (the default).
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
KillWait=5
MinJobAge=300
SlurmdTimeout=10
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
# A job in \`urgent\` preempts (cancels) one in \`debug\` for its CPUs: the tests' PREEMPTED.
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=2
CONF
  cat > /etc/slurm/cgroup.conf.new <<CONF
# Written by .ci/slurm/cluster.sh.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
CONF
  mv "$CONF.new" "$CONF"
  mv /etc/slurm/cgroup.conf.new /etc/slurm/cgroup.conf
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "cluster.sh: $what did not come up in ${seconds}s" >&2
  logs 30 >&2
  return 1
}

node_ready() { sinfo -h -N -n "$NODE" -o '%t' | grep -Eq '^(idle|mix|alloc)$'; }

up() {
  write_config
  if ! running "$STATE/munged.pid"; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munged.pid.munge" --socket="$MUNGE_SOCKET"
    wait_for 10 munged test -S "$MUNGE_SOCKET"
    cp "$STATE/munged.pid.munge" "$STATE/munged.pid" 2>/dev/null || pgrep -u munge -n munged >"$STATE/munged.pid"
  fi
  if ! running "$STATE/slurmctld.pid"; then
    slurmctld
    wait_for 20 slurmctld scontrol ping
  fi
  if ! running "$STATE/slurmd.pid"; then
    slurmd
  fi
  # A node left down by an earlier run (slurmd killed by a test) comes back.
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  wait_for 30 "the node $NODE" node_ready
  echo "slurm: up, node $NODE ($(sinfo -h -N -n "$NODE" -o '%c CPUs, %m MiB, %t'))"
}

down() {
  local name
  for name in slurmd slurmctld munged; do
    if running "$STATE/$name.pid"; then
      kill "$(cat "$STATE/$name.pid")"
      for _ in $(seq 50); do running "$STATE/$name.pid" || break; sleep 0.1; done
    fi
  done
  rm -rf "$STATE" /etc/slurm/slurm.conf /etc/slurm/cgroup.conf
  echo "slurm: down"
}

status() {
  [ -f "$CONF" ] || { echo "slurm: not configured (cluster.sh up)"; return 1; }
  scontrol ping
  sinfo -N -o '%N %t %c CPUs %m MiB %P'
  node_ready
}

logs() {
  local n="${1:-40}" f
  for f in "$STATE"/log/*.log; do
    [ -f "$f" ] || continue
    echo "== $f"
    tail -n "$n" "$f"
  done
}

case "${1:-status}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) logs "${2:-40}" ;;
  *) echo "usage: cluster.sh up|down|status|logs [N]" >&2; exit 2 ;;
esac

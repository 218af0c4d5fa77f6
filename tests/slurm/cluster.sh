# cluster.sh — a real single-node Slurm (slurmctld + slurmd + munged) in a
# temporary directory, as ../shared/PLATFORM.md describes: `cluster_start B`
# starts it under base directory B, exports SLURM_CONF and returns once the
# node is idle; `cluster_stop` stops every daemon it started, by PID (TERM,
# then KILL), and checks that they are gone. Needs root and the packages
# slurm-wlm slurmctld slurmd slurm-client munge slurm-wlm-basic-plugins.
# Ports 6817/6818 are fixed, so only one such cluster runs on a machine at a
# time.
#
# The node declares CLUSTER_CPUS CPUs (default 8: 4 tasks x 2 CPUs) even on
# a smaller machine (SlurmdParameters=config_overrides). Tasks are bound
# with TaskPlugin=task/affinity; task/cgroup (ConstrainCores) is added only
# where the machine allows it: a writable cpuset hierarchy and at least as
# many real CPUs as declared (cluster_cgroup_ok). cluster_real_cpus prints
# the CPUs this process may run on, i.e. what binding can really use.
# Finished jobs stay visible to scontrol for 10 minutes (MinJobAge; there is
# no accounting database), long enough for a test to check how they ended.
# A requeued job starts again once its first credential expires
# (AuthInfo cred_expire, 10 s here instead of the default 120 s).
cluster_pids=()
cluster_cgroup_dirs=unused # the slurm cgroups that existed before we started

# cluster_test_env: what every Slurm test script sets up first (source
# tests/cli/lib.sh before this file): lib.sh's MPI test settings, with ranks
# that yield while they wait (the daemons share the CPUs); $tmp, a temporary
# directory munged accepts (mode 755: it refuses a socket below a directory
# others cannot enter); and an EXIT trap that stops the cluster and removes
# $tmp.
cluster_test_env() {
  mpi_test_env
  export OMPI_MCA_mpi_yield_when_idle=1
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  trap 'cluster_stop; rm -rf "$tmp"' EXIT
}

# cluster_wait_gone JOBID MINUTES: until the job has left the queue
# (finished); after MINUTES, one failure (lib.sh's bad) naming its state,
# the job cancelled, and status 1.
cluster_wait_gone() {
  local i
  for i in $(seq 1 $(($2 * 120))); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  bad "job $1 still queued after $2 minutes: $(squeue -h -j "$1" -o '%T %r')"
  scancel "$1"
  return 1
}

cluster_real_cpus() { nproc; }
cluster_real_mib() { awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo; }

cluster_cgroup_ok() {
  local cpus=$1 probe
  [ "$(cluster_real_cpus)" -ge "$cpus" ] || return 1
  for probe in /sys/fs/cgroup/cpuset /sys/fs/cgroup; do
    [ -e "$probe/cpuset.cpus" ] || [ -e "$probe/cgroup.controllers" ] || continue
    mkdir "$probe/raana-probe.$$" 2>/dev/null || continue
    rmdir "$probe/raana-probe.$$"
    return 0
  done
  return 1
}

cluster_write_conf() { # cluster_write_conf BASE CPUS TASKPLUGIN
  local b=$1 cpus=$2 task=$3
  cat >"$b/slurm.conf" <<CONF
ClusterName=raana-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$b/munge/munge.socket.2,cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$b/state
SlurmdSpoolDir=$b/spool/slurmd-%n
SlurmctldPidFile=$b/slurmctld.pid
SlurmdPidFile=$b/slurmd.pid
SlurmctldLogFile=$b/log/slurmctld.log
SlurmdLogFile=$b/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=$task
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$(cluster_real_mib) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  if [ "${task#*cgroup}" != "$task" ]; then
    printf 'ConstrainCores=yes\n' >"$b/cgroup.conf"
  fi
}

cluster_start() {
  local b=$1 cpus=${CLUSTER_CPUS:-8} task=task/affinity i
  mkdir -p "$b"/{munge,state,spool/slurmd-localhost,log}
  chmod 755 "$b" "$b/munge"
  mungekey --create --keyfile="$b/munge/munge.key" 2>/dev/null
  chmod 600 "$b/munge/munge.key"
  if cluster_cgroup_ok "$cpus"; then
    task=task/affinity,task/cgroup
    cluster_cgroup_dirs=$(ls -d /sys/fs/cgroup/*/slurm_localhost /sys/fs/cgroup/slurm_localhost 2>/dev/null)
  fi
  cluster_write_conf "$b" "$cpus" "$task"
  echo "cluster.sh: $cpus CPUs declared ($(cluster_real_cpus) real), TaskPlugin=$task" >&2
  setsid munged -F --key-file="$b/munge/munge.key" --socket="$b/munge/munge.socket.2" \
    --pid-file="$b/munge/munged.pidfile" --log-file="$b/log/munged.log" \
    --seed-file="$b/munge/munged.seed" >"$b/log/munged.err" 2>&1 &
  cluster_pids+=($!)
  for i in $(seq 1 40); do
    [ -S "$b/munge/munge.socket.2" ] && break
    sleep 0.25
  done
  if [ ! -S "$b/munge/munge.socket.2" ]; then # munged wants every parent directory world-executable
    echo "cluster.sh: munged did not start: $(tail -1 "$b/log/munged.err")" >&2
    return 1
  fi
  setsid slurmctld -D -i -f "$b/slurm.conf" >/dev/null 2>&1 &
  cluster_pids+=($!)
  setsid slurmd -D -N localhost -f "$b/slurm.conf" >/dev/null 2>&1 &
  cluster_pids+=($!)
  export SLURM_CONF=$b/slurm.conf
  for i in $(seq 1 240); do # up to 2 minutes on a loaded machine (usually 1 s)
    [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && return 0
    sleep 0.5
  done
  echo "cluster.sh: the node did not become idle; logs in $b/log" >&2
  return 1
}

# 0 when none of the PIDs runs any more, else lists the survivors.
cluster_gone() {
  local p alive=()
  for p in "$@"; do # a zombie (exited, not yet reaped) counts as gone
    case $(ps -o stat= -p "$p" 2>/dev/null) in "" | Z*) ;; *) alive+=("$p") ;; esac
  done
  [ ${#alive[@]} -eq 0 ] && return 0
  echo "cluster.sh: still running: $(ps -o pid=,comm= -p "${alive[*]}" | tr '\n' ' ')" >&2
  return 1
}

cluster_stop() {
  local p i pids=("${cluster_pids[@]}")
  [ ${#pids[@]} -eq 0 ] && return 0
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 40); do
    cluster_gone "${pids[@]}" 2>/dev/null && break
    sleep 0.25
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for i in $(seq 1 20); do
    cluster_gone "${pids[@]}" 2>/dev/null && break
    sleep 0.1
  done
  cluster_pids=()
  cluster_gone "${pids[@]}" || return 1
  wait "${pids[@]}" 2>/dev/null # reap them
  if [ "$cluster_cgroup_dirs" != unused ]; then # remove the (empty) cgroups slurmd made
    for p in /sys/fs/cgroup/*/slurm_localhost /sys/fs/cgroup/slurm_localhost; do
      [ -d "$p" ] && ! grep -qx "$p" <<<"$cluster_cgroup_dirs" &&
        find "$p" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    cluster_cgroup_dirs=unused
  fi
  return 0
}

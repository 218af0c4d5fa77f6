# cluster.sh — a real single-node Slurm (slurmctld + slurmd + munged) in a
# temporary directory, as ../shared/PLATFORM.md describes: `cluster_start B`
# starts it under base directory B and exports SLURM_CONF; `cluster_stop`
# stops what it started. Needs root and the packages slurm-wlm slurmctld
# slurmd slurm-client munge slurm-wlm-basic-plugins. Ports 6817/6818 are
# fixed, so only one such cluster runs on a machine at a time.
cluster_pids=()

cluster_start() {
  local b=$1 i
  mkdir -p "$b"/{munge,state,spool/slurmd-localhost,log}
  chmod 755 "$b" "$b/munge"
  mungekey --create --keyfile="$b/munge/munge.key" 2>/dev/null
  chmod 600 "$b/munge/munge.key"
  cat >"$b/slurm.conf" <<CONF
ClusterName=raana-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$b/munge/munge.socket.2
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
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=30
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
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

cluster_stop() {
  local p i
  for p in "${cluster_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 20); do
    kill -0 "${cluster_pids[@]}" 2>/dev/null || break
    sleep 0.25
  done
  for p in "${cluster_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  cluster_pids=()
}

#!/usr/bin/env bash
# test_slurm.sh — raana-mpi under a real single-node Slurm (tests/slurm/
# cluster.sh, task/affinity):
#  - `sbatch slurm/quantize.sbatch` with 2 and with 4 tasks, and `srun
#    --mpi=pmix` with 3, give containers identical to mpirun's (outside
#    /provenance, which must say 2, 4 and 3 ranks);
#  - the job log has the header (version, hosts, ranks, threads, binding,
#    BLAS, model with its parameter count checked against the safetensors
#    header, config digest, planned memory), UTC timestamps, progress
#    counting the layers of all ranks, and the closing line;
#  - requeue: a job paused mid-quantize (RAANA_FAULT_INJECT ... :pause) gets
#    the template's signal (`scancel --signal=USR1 --batch`), exits 75,
#    requeues itself, resumes (its log names what was reused) and writes a
#    container identical to the uninterrupted one; one log holds both starts;
#  - binding: while paused, every thread of every rank runs on the CPUs
#    Slurm gave the rank (/proc/PID/task/*/status), with cpus-per-task 1 (two
#    ranks, disjoint CPUs) and 2 (as many ranks as the real CPUs allow);
#  - srun without PMIx is refused with exit code 7 and the fix named;
#  - every daemon is gone afterwards.
# Usage: test_slurm.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
. "$src/tests/slurm/cluster.sh"
cluster_test_env # MPI settings, $tmp, the EXIT trap
py=/usr/bin/python3
job=$src/jobs/kjv-tiny.ini
model=$src/tests/data/kjv-tiny
same() { # same A B what
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$1" "$2" >/dev/null &&
    ok || bad "$3: container differs from mpirun's"
}
ranks_of() { "$py" -c 'import h5py,sys; print(int(h5py.File(sys.argv[1])["provenance"].attrs["n_ranks"]))' "$1"; }
has() { # has FILE REGEX what: an extended regex matches a line of FILE
  grep -qE -- "$2" "$1" && ok || bad "$3: no line matching '$2' in $1"
}
count() { grep -cE -- "$2" "$1"; }

out_h5=$tmp/kjv.h5 # the same path in every run: config.ini, stored in the container, names it
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
expect_rc 0 "mpirun reference"
mv "$out_h5" "$tmp/mpirun.h5"
version=$("$mpi_bin" --version | awk '{print $2}')
params=$("$py" -c 'import json,struct,sys,math
f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; h=json.loads(f.read(n))
print(sum(math.prod(v["shape"]) for k,v in h.items() if k!="__metadata__"))' "$model/model.safetensors")
real_cpus=$(cluster_real_cpus)

if ! cluster_start "$tmp/slurm"; then
  bad "could not start Slurm (see above)"
  finish
  exit
fi
ok

# sbatch_template NAME [sbatch options...] -- [raana-mpi options...]: submits
# slurm/quantize.sbatch on the fixture job; prints the job id.
sbatch_template() {
  local name=$1 opts=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1") && shift; done
  shift
  sbatch --parsable --job-name="$name" --chdir="$tmp" --output="$tmp/$name-%j.log" \
    --mem-per-cpu=200M --time=00:30:00 "${opts[@]}" "$src/slurm/quantize.sbatch" "$job" \
    --set "output.path=$out_h5" "$@"
}
# wait_gone JOBID: until the job has left the queue (finished).
wait_gone() { cluster_wait_gone "$1" 10; }
# wait_lines JOBID FILE REGEX N: until FILE has N lines matching REGEX. A
# requeued job leaves the queue for a moment, so wait_gone alone cannot
# tell that its second start has run. Slurm holds a requeued job until the
# first start's credential expires (AuthInfo cred_expire: 10 s in
# tests/slurm/cluster.sh, 120 s by default; forcing an earlier start fails
# it); the limit is only a hang guard.
wait_lines() {
  local i
  for i in $(seq 1 1800); do
    [ "$(grep -cE -- "$3" "$2" 2>/dev/null)" -ge "$4" ] && return 0
    sleep 0.5
  done
  bad "$2: fewer than $4 lines matching '$3' after 15 minutes"
  return 1
}
# wait_log FILE TEXT: until the file has a line containing TEXT (or the job ended)
wait_log() {
  local i
  for i in $(seq 1 1200); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.25
  done
  bad "$1: no '$2' after 5 minutes"
  return 1
}
job_field() { scontrol show job "$1" | grep -oE "(^| )$2=[^ ]*" | head -1 | cut -d= -f2; }

# ---- 2 and 4 tasks: the container, the log ----------------------------------------
# 4 tasks on fewer real CPUs than 4 cannot each have a core of their own:
# srun --cpu-bind=none then (the template's RAANA_CPU_BIND knob).
for n in 2 4; do
  bind=cores
  [ "$real_cpus" -lt "$n" ] && bind=none
  jid=$(RAANA_MPI=$mpi_bin RAANA_CPU_BIND=$bind sbatch_template "q$n" --ntasks-per-node="$n" \
    --cpus-per-task=1 --)
  [ -n "$jid" ] && ok || bad "sbatch -n $n: no job id"
  wait_gone "$jid"
  [ "$(job_field "$jid" JobState)" = COMPLETED ] && [ "$(job_field "$jid" ExitCode)" = 0:0 ] &&
    ok || bad "$n tasks: job $jid ended $(job_field "$jid" JobState) $(job_field "$jid" ExitCode)"
  log=$tmp/q$n-$jid.log
  has "$log" "^wrote $out_h5\$" "$n tasks"
  mv "$out_h5" "$tmp/sbatch$n.h5"
  same "$tmp/mpirun.h5" "$tmp/sbatch$n.h5" "sbatch $n tasks"
  [ "$(ranks_of "$tmp/sbatch$n.h5")" = "$n" ] && ok || bad "sbatch $n: provenance n_ranks"
  # the header
  stamp='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
  has "$log" "^==== raana-mpi $version, started $stamp ====\$" "header: version, start time"
  has "$log" "^hosts: \S+ \($n ranks\)\$" "header: hosts"
  has "$log" "^ranks: $n, threads per rank: 1 \(OpenMP, quantize\), 1 \(OpenBLAS" "header: ranks"
  [ "$(count "$log" '^binding: rank [0-9]+ on \S+ \(pid [0-9]+\): cpus [0-9]')" = "$n" ] &&
    ok || bad "header: $n binding lines"
  has "$log" "^slurm: job $jid, restart 0, cpus-per-task 1, nodes localhost\$" "header: slurm"
  has "$log" "^blas: OpenBLAS .*; core \S+, 1 threads\$" "header: blas"
  has "$log" "^model: .*kjv-tiny \(llama, $params parameters, 4 blocks, hidden 192\); 28 of 28" \
    "header: model and parameter count"
  has "$log" "^config: .*kjv-tiny.ini, digest [0-9a-f]{16} of the effective config" "header: config"
  has "$log" "^memory: planned peak [0-9.]+ MiB per rank .*; Slurm allows 200 MiB per rank\$" \
    "header: memory"
  # progress over all ranks, with time stamps, elapsed and ETA; rank 0 encodes
  # only part of the 28 layers (the costliest first: any layer may come first),
  # yet the count reaches 28 with one line per round
  has "$log" "^$stamp quantize: model\.layers\.[0-9]+\.\S+ .*\[[0-9]+/28 layers, all ranks, [0-9]+%, elapsed [0-9]+:[0-9]{2}:[0-9]{2}, ETA ([0-9]+:[0-9]{2}:[0-9]{2}|\?)\]\$" \
    "progress line"
  has "$log" "\[28/28 layers, all ranks, 100%" "progress reaches every rank's layers"
  rounds=$(count "$log" "^$stamp quantize: ")
  [ "$rounds" -lt 28 ] && ok || bad "$n tasks: $rounds quantize lines; rank 0 alone would print fewer than 28"
  has "$log" "^$stamp write: .*\[28/28 layers" "write progress"
  has "$log" "^$stamp finished: ok \(exit 0\), wall time [0-9]+:[0-9]{2}:[0-9]{2}\$" "closing line"
  digest[$n]=$(grep -oE 'digest [0-9a-f]{16}' "$log")
done
[ "${digest[2]}" = "${digest[4]}" ] && ok || bad "config digest differs: ${digest[2]} ${digest[4]}"

# ---- srun directly, 3 tasks ------------------------------------------------------
run srun --mpi=pmix --cpu-bind=none -n 3 "$mpi_bin" "$job" --set "output.path=$out_h5"
expect_rc 0 "srun --mpi=pmix -n 3"
mv "$out_h5" "$tmp/srun.h5"
same "$tmp/mpirun.h5" "$tmp/srun.h5" "srun -n 3"
[ "$(ranks_of "$tmp/srun.h5")" = 3 ] && ok || bad "srun: provenance n_ranks"

# ---- srun without PMIx: refused before MPI_Init with one clear line -----------------
run srun --mpi=none --cpu-bind=none -n 2 "$mpi_bin" --dry-run "$job"
[ "$rc" -eq 7 ] && ok || bad "srun --mpi=none: exit $rc, expected 7"
expect_err "Slurm started 2 tasks without PMIx" "srun --mpi=none"
expect_err "Launch with \`srun --mpi=pmix\`" "srun --mpi=none names the fix"
expect_one_error_line "srun --mpi=none"

# ---- requeue: signal mid-run, exit 75, requeue, resume, same container --------------
# Rank 0 pauses after its 2nd layer (one round is logged by then) until the
# signal arrives; the ONCE file keeps the requeued start from pausing again.
jid=$(RAANA_MPI=$mpi_bin RAANA_CPU_BIND=cores \
  RAANA_FAULT_INJECT="quantize:0:2:pause:$tmp/paused-once" OPENBLAS_NUM_THREADS=1 \
  sbatch_template requeue --ntasks-per-node=2 --cpus-per-task=1 --)
log=$tmp/requeue-$jid.log
if wait_log "$log" "rank 0 paused in quantize"; then
  has "$log" "quantize: model\.layers\.[0-9]+\.\S+ .*\[2/28 layers, all ranks" \
    "requeue: quantize progress before the signal"
  if [ "$real_cpus" -ge 2 ]; then # binding: one CPU each, disjoint
    run "$py" "$src/tests/slurm/check_affinity.py" "$log" 2 1 1
    [ "$rc" -eq 0 ] && ok || bad "affinity, cpus-per-task 1: $out"
  fi
  scancel --signal=USR1 --batch "$jid" && ok || bad "scancel --signal=USR1 --batch"
  wait_lines "$jid" "$log" '^[0-9TZ:-]+ finished: ' 2
fi
wait_gone "$jid"
[ "$(job_field "$jid" JobState)" = COMPLETED ] && [ "$(job_field "$jid" Restarts)" = 1 ] &&
  ok || bad "requeue: job $jid ended $(job_field "$jid" JobState), restarts $(job_field "$jid" Restarts)"
[ "$(count "$log" '^==== raana-mpi ')" = 2 ] && ok || bad "requeue: one log with both starts"
has "$log" "^quantize.sbatch: SIGUSR1 received; forwarding it to the ranks\$" "requeue: forwarded"
has "$log" "^raana-mpi: error: preempted: .* 4 of 28 layers are finished and kept in $out_h5.resume; run the same command again to resume\$" \
  "requeue: preemption message"
has "$log" "finished: preempted \(exit 75\)" "requeue: first start's closing line"
has "$log" "^quantize.sbatch: preempted \(exit 75\); requeueing job $jid" "requeue: requeued"
has "$log" "^slurm: job $jid, restart 1," "requeue: second start says restart 1"
has "$log" "^resume: $out_h5.resume holds the calibration and 4 finished layers" "requeue: resume found"
has "$log" "^[0-9TZ:-]+ calibrate: resumed from $out_h5.resume/calibration.bin\$" "requeue: calibration reused"
# the 4 finished layers stay with their blocks' owners on the second start
# (no weights travel for them): rank 0 reports the ones of its blocks 0 and
# 1, between none and all 4, and no other layer as resumed
resumed_lines=$(count "$log" '\[resumed\] \[')
[ "$resumed_lines" -le 4 ] &&
  [ "$(count "$log" '^[0-9TZ:-]+ quantize: model\.layers\.[01]\.\S+ .*\[resumed\] \[')" = "$resumed_lines" ] &&
  ok || bad "requeue: rank 0's resumed layers ($resumed_lines lines) are not those of its blocks"
has "$log" "^layers: 24 encoded, 4 resumed\$" "requeue: summary"
has "$log" "finished: ok \(exit 0\)" "requeue: second start's closing line"
if [ -f "$out_h5" ]; then
  mv "$out_h5" "$tmp/requeued.h5"
  same "$tmp/mpirun.h5" "$tmp/requeued.h5" "requeued job"
else
  bad "requeue: no container"
fi
[ ! -e "$out_h5.resume" ] && ok || bad "requeue: $out_h5.resume left behind"

# ---- binding with cpus-per-task 2 --------------------------------------------------
# As many ranks as the machine's real CPUs allow (4 x 2 needs 8); each
# rank's threads (2 OpenMP + 2 OpenBLAS) must stay on its two CPUs. The job
# is cancelled once checked.
n=$((real_cpus / 2))
[ "$n" -gt 4 ] && n=4
if [ "$n" -ge 1 ]; then
  jid=$(RAANA_MPI=$mpi_bin RAANA_CPU_BIND=cores \
    RAANA_FAULT_INJECT="quantize:0:1:pause:$tmp/paused-once-2" \
    sbatch_template bind2 --ntasks-per-node="$n" --cpus-per-task=2 --)
  log=$tmp/bind2-$jid.log
  if wait_log "$log" "rank 0 paused in quantize"; then
    has "$log" "^ranks: $n, threads per rank: 2 \(OpenMP, quantize\), 2 \(OpenBLAS" \
      "cpus-per-task 2: threads follow it"
    has "$log" "OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2" "cpus-per-task 2: template exports"
    has "$log" "^cpu-bind=MASK - localhost, task +0 +0 \[[0-9]+\]: mask 0x[0-9a-f]+ set" \
      "cpus-per-task 2: srun prints the binding"
    run "$py" "$src/tests/slurm/check_affinity.py" "$log" "$n" 2 3
    [ "$rc" -eq 0 ] && ok || bad "affinity, cpus-per-task 2: $out"
  fi
  scancel "$jid"
  wait_gone "$jid"
else
  bad "this machine has fewer than 2 CPUs: cannot test cpus-per-task 2"
fi

cluster_stop && ok || bad "daemons still running after cluster_stop"
finish

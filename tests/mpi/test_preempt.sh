#!/usr/bin/env bash
# test_preempt.sh — preemption without Slurm: a job paused mid-quantize by
# RAANA_FAULT_INJECT (":pause", so the signal certainly arrives mid-run,
# without relying on timing) receives SIGUSR1 or SIGTERM; every rank stops
# at the same agreement point and exits 75 with one message saying how many
# layers are kept, OUTPUT.resume holds exactly that many layer files, and
# running again (with the same or another rank count) resumes them and
# writes the container an uninterrupted run writes. Cases:
#   1 rank,  SIGUSR1 to the process;
#   3 ranks, SIGUSR1 to the last rank only (the others learn it from the
#            agreement, no hang), resumed with 2 ranks;
#   2 ranks, SIGTERM to rank 0 only (what Slurm sends at the end).
# Also: the log header warns when OpenBLAS runs a kernel older than the CPU
# (OPENBLAS_CORETYPE=Prescott) exactly when /proc/cpuinfo has AVX2/AVX-512.
# Usage: test_preempt.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC [quick]
# quick (the sanitizer build): only the 3-rank case, the one where a signal
# reaches one rank and the resume takes another rank count; the Release
# build runs all three.
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4 mode=${5:-full}
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/kjv.h5 # one path for every run: config.ini in the container names it

run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
expect_rc 0 "uninterrupted run"
mv "$out_h5" "$tmp/ref.h5"

# preempt P PAUSED_RANK SIGNAL TARGET RESUME_P: TARGET is "all" (the
# launcher forwards it to every rank) or a rank whose pid the header names.
preempt() {
  local p=$1 paused=$2 sig=$3 target=$4 resume_p=$5 what="$1 ranks, SIG$3 to $4" pid i
  RAANA_FAULT_INJECT="quantize:$paused:2:pause" "$mpiexec" -n "$p" "$mpi_bin" "$job" \
    --set "output.path=$out_h5" >"$tmp/out" 2>"$tmp/err" &
  local launcher=$!
  for i in $(seq 1 1200); do
    grep -q "rank $paused paused in quantize" "$tmp/err" && break
    sleep 0.25
  done
  if [ "$target" = all ]; then
    pid=$launcher
  else
    pid=$(sed -n "s/^binding: rank $target on .* (pid \([0-9]*\)):.*/\1/p" "$tmp/err")
  fi
  kill -"$sig" "$pid"
  wait "$launcher"
  rc=$? errout=$(cat "$tmp/err")
  expect_rc 75 "$what"
  expect_one_error_line "$what"
  local kept
  kept=$(sed -n 's/^raana-mpi: error: preempted: .*; \([0-9]*\) of 28 layers are finished.*/\1/p' \
    "$tmp/err")
  [ -n "$kept" ] && [ "$kept" -ge "$p" ] && ok || bad "$what: message: $errout"
  expect_err "kept in $out_h5.resume; run the same command again to resume" "$what"
  expect_err "finished: preempted (exit 75)" "$what: closing line"
  [ "$(ls "$out_h5.resume/layers" | grep -c '\.bin$')" = "$kept" ] && ok ||
    bad "$what: $(ls "$out_h5.resume/layers" | wc -l) layer files, message says $kept"
  [ ! -e "$out_h5" ] && [ ! -e "$out_h5.partial" ] && ok || bad "$what: output left behind"
  run "$mpiexec" -n "$resume_p" "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "$what: resumed with $resume_p ranks"
  expect_err "resume: $out_h5.resume holds the calibration and $kept finished layers" "$what: resume"
  expect_out "layers: $((28 - kept)) encoded, $kept resumed" "$what: summary"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/ref.h5" \
    "$out_h5" >/dev/null && ok || bad "$what: container differs from the uninterrupted run's"
  rm -rf "$out_h5" "$out_h5.resume"
}
preempt 3 2 USR1 2 2
if [ "$mode" != quick ]; then
  preempt 1 0 USR1 all 1
  preempt 2 0 TERM 0 2
fi

# the BLAS warning, in the header of a run that stops at once (--calibrate-only)
avx=0
grep -qwE 'avx2|avx512f' /proc/cpuinfo && avx=1
run env OPENBLAS_CORETYPE=Prescott "$mpi_bin" --calibrate-only "$job" --set "output.path=$out_h5"
expect_rc 0 "OPENBLAS_CORETYPE=Prescott"
expect_err "core Prescott" "Prescott: header names the core"
if [ "$avx" = 1 ]; then
  expect_err "blas: warning: OpenBLAS runs its Prescott kernels on a CPU with AVX" "Prescott warning"
  expect_err "OPENBLAS_CORETYPE=" "Prescott warning names the fix"
else
  grep -q "blas: warning" <<<"$errout" && bad "warning without AVX2" || ok
fi
finish

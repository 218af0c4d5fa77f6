#!/bin/bash
# test_fault_paths.sh — the error paths of the container writer and reader:
# with RAANA_FAULT_FAIL_AT=N (fault.h) the N-th allocation or open (malloc
# through raana_malloc, HDF5 file/group/dataset/attribute open or create,
# file open) fails. For the writer (a one-rank job on the fixture, 2 layers,
# 1 calibration window) and the readers (raana-inspect --verify, raana-eval
# --container --max-windows 1), N runs 1, 2, ... until the command
# succeeds. Every failing N must exit non-zero with exactly one
# "TOOL: error:" line, no sanitizer report (in the ASan build LeakSanitizer
# checks every exit), and nothing at the final container path.
#
# Usage: test_fault_paths.sh RAANA_MPI RAANA_INSPECT RAANA_EVAL SOURCE_DIR
# Every N up to $DENSE (default 24), then every $STRIDE-th (default 11), then
# every N between the last failure and the first success, so the first and
# last sites are always covered (sparser under RAANA_TEST_QUICK=1, the
# sanitizer build); RAANA_FAULT_TEST_ALL=1 tries every N.
set -u
mpi=$1 inspect=$2 eval=$3 src=$4
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  OMPI_MCA_ess_singleton_isolated=1 # no orted per run: a second less each
dense=${DENSE:-24} stride=${STRIDE:-11} cap=2000
# the sanitizer build (RAANA_TEST_QUICK, tests/CMakeLists.txt) samples more
# sparsely: about 20 runs per tool instead of about 55, still the first and
# the last sites; the Release build covers the sites at the default density
if [ "${RAANA_TEST_QUICK:-0}" = 1 ]; then dense=${DENSE:-4} stride=${STRIDE:-41}; fi
[ "${RAANA_FAULT_TEST_ALL:-0}" = 1 ] && stride=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=$src/tests/data/kjv-tiny

cat >"$work/job.ini" <<EOF
[model]
path = $model
[calibration]
source = text
text_file = $model/calib.txt
n_samples = 1
seq_len = 16
[quantize]
avg_bits = 3
bits = 2, 4
seed = 1234
exclude = model.layers.1.*, model.layers.2.*, model.layers.3.*, *.k_proj, *.v_proj, *.o_proj, *.gate_proj, *.up_proj
[output]
path = $work/out/kjv.h5
overwrite = true
EOF

# check_failure TOOL N FINAL: the run that just ended failed cleanly.
check_failure() {
  local tool=$1 n=$2 final=$3 lines
  lines=$(grep -c "^$tool: error: " <<<"$errout")
  if [ "$rc" -eq 0 ] || [ "$lines" -ne 1 ]; then
    bad "$tool, fault $n: exit $rc with $lines error lines: $errout"
  elif grep -qE 'Sanitizer|runtime error' <<<"$errout"; then
    bad "$tool, fault $n: sanitizer report: $errout"
  elif [ -n "$final" ] && [ -e "$final" ]; then
    bad "$tool, fault $n: $final exists after a failed run"
  else
    ok
  fi
}

# fault_loop TOOL FINAL SETUP CMD...: runs SETUP (a function: fresh state)
# then CMD with fault N for N = 1, 2, ... until CMD succeeds; the count of
# sites is the last failing N.
fault_loop() {
  local tool=$1 final=$2 setup=$3 n=0 last_fail=0 step=1 runs=0 filling=0
  shift 3
  while :; do
    n=$((n + step))
    $setup
    run env RAANA_FAULT_FAIL_AT=$n "$@"
    runs=$((runs + 1))
    if [ "$rc" -ne 0 ]; then
      check_failure "$tool" "$n" "$final"
      last_fail=$n
      [ "$n" -ge "$dense" ] && [ "$filling" = 0 ] && step=$stride
    elif [ "$step" -gt 1 ]; then # success past the last site: fill the gap
      n=$last_fail step=1 filling=1
    else
      break
    fi
    if [ "$n" -ge "$cap" ]; then
      bad "$tool: still failing at fault $n"
      return
    fi
  done
  if [ "$last_fail" -gt 0 ] && [ -n "$final" ] && [ ! -s "$final" ]; then
    bad "$tool: fault $n succeeded but left no $final"
  elif [ "$last_fail" -gt 0 ]; then
    ok
  else
    bad "$tool: the first fault site never failed the run"
  fi
  echo "$tool: $last_fail fault sites; $runs runs, every failure clean"
}

fresh_output() { rm -rf "$work/out" && mkdir -p "$work/out"; }
keep() { :; }

# (a) the writer
fault_loop raana-mpi "$work/out/kjv.h5" fresh_output "$mpi" "$work/job.ini"

# (b) the readers, on that container
container=$work/reader.h5
fresh_output
run "$mpi" "$work/job.ini"
expect_rc 0 "the job without faults"
mv "$work/out/kjv.h5" "$container"
fault_loop raana-inspect "" keep "$inspect" --verify "$container"
fault_loop raana-eval "" keep "$eval" --container "$container" --text "$model/heldout.txt" \
  --seq-len 16 --max-windows 1

finish

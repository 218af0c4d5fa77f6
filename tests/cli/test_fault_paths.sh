#!/bin/bash
# test_fault_paths.sh — the error paths of the container writer and reader:
# with RAANA_FAULT_FAIL_AT=N (fault.h) the N-th allocation or open (malloc
# through raana_malloc, HDF5 file/group/dataset/attribute open or create,
# file open) fails. For the writer (a one-rank job on the fixture, 2 layers,
# 1 calibration window) and the readers (raana-inspect --verify, raana-eval
# --container --max-windows 1), one fault-free run with
# RAANA_FAULT_COUNT_FILE counts the fault sites S; then every sampled N in
# 1 .. S must exit non-zero with exactly one "TOOL: error:" line, no
# sanitizer report (in the ASan build LeakSanitizer checks every exit), and
# nothing at the final container path; N = S + 1 must succeed (and count S
# again): S is exact, so the first and the last sites are always covered.
#
# Usage: test_fault_paths.sh RAANA_MPI RAANA_INSPECT RAANA_EVAL SOURCE_DIR
# N = 1 .. $DENSE (default 24), every $STRIDE-th (default 11), S - 1 and S
# (sparser under RAANA_TEST_QUICK=1, the sanitizer build);
# RAANA_FAULT_TEST_ALL=1 tries every N.
set -u
mpi=$1 inspect=$2 eval=$3 src=$4
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  OMPI_MCA_ess_singleton_isolated=1 # no orted per run: a second less each
dense=${DENSE:-24} stride=${STRIDE:-11}
# the sanitizer build (RAANA_TEST_QUICK, tests/CMakeLists.txt) samples more
# sparsely, still the first and the last sites; the Release build covers the
# sites at the default density
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

# fault_samples S: the N to fail, one a line: 1 .. dense, every stride-th,
# S - 1 and S (all within 1 .. S, in order, no repeats)
fault_samples() {
  local s=$1 n
  for ((n = 1; n <= s; n++)); do
    if [ "$n" -le "$dense" ] || [ $((n % stride)) = 0 ] || [ "$n" -ge $((s - 1)) ]; then
      echo "$n"
    fi
  done
}

# fault_loop TOOL FINAL SETUP CMD...: counts the fault sites S of CMD in one
# fault-free run, then runs SETUP (a function: fresh state) and CMD with
# each sampled fault N (each must fail cleanly) and with N = S + 1 (must
# succeed, leave FINAL and pass S sites again).
fault_loop() {
  local tool=$1 final=$2 setup=$3 count=$work/fault-count sites n runs=0
  shift 3
  rm -f "$count"
  $setup
  run env RAANA_FAULT_COUNT_FILE="$count" "$@"
  sites=$(cat "$count" 2>/dev/null)
  if [ "$rc" -ne 0 ] || ! [[ "$sites" =~ ^[0-9]+$ ]] || [ "$sites" -lt 1 ]; then
    bad "$tool: the fault-free run: exit $rc, fault sites '$sites': $errout"
    return
  fi
  ok
  for n in $(fault_samples "$sites"); do
    $setup
    run env RAANA_FAULT_FAIL_AT=$n "$@"
    runs=$((runs + 1))
    if [ "$rc" -ne 0 ]; then
      check_failure "$tool" "$n" "$final"
    else
      bad "$tool: fault $n of $sites did not fail the run"
    fi
  done
  rm -f "$count"
  $setup
  run env RAANA_FAULT_FAIL_AT=$((sites + 1)) RAANA_FAULT_COUNT_FILE="$count" "$@"
  runs=$((runs + 1))
  if [ "$rc" -ne 0 ]; then
    bad "$tool: fault $((sites + 1)), past the $sites sites, failed: exit $rc: $errout"
  elif [ "$(cat "$count" 2>/dev/null)" != "$sites" ]; then
    bad "$tool: fault $((sites + 1)) passed $(cat "$count" 2>/dev/null) sites, not $sites"
  elif [ -n "$final" ] && [ ! -s "$final" ]; then
    bad "$tool: fault $((sites + 1)) succeeded but left no $final"
  else
    ok
  fi
  echo "$tool: $sites fault sites; $runs runs after the count, every failure clean"
}

fresh_output() { rm -rf "$work/out" && mkdir -p "$work/out"; }
keep() { :; }

# (a) the writer
fault_loop raana-mpi "$work/out/kjv.h5" fresh_output "$mpi" "$work/job.ini"

# (b) the readers, on the container of the writer's last run above (fault
# S + 1: no site fails, so it is the fault-free job's container; a second
# fault-free job would write the same)
container=$work/reader.h5
[ -s "$work/out/kjv.h5" ] && ok || bad "the job without faults: no container $work/out/kjv.h5"
mv "$work/out/kjv.h5" "$container"
fault_loop raana-inspect "" keep "$inspect" --verify "$container"
fault_loop raana-eval "" keep "$eval" --container "$container" --text "$model/heldout.txt" \
  --seq-len 16 --max-windows 1

finish

#!/usr/bin/env bash
# test_windows_in_flight.sh — calibration in rounds of M windows in flight
# ([calibration] windows_in_flight, issue 11) changes memory, never results.
# For each P: the whole job on the fixture (5 windows of 48 tokens, so that
# M = 2 ends with a ragged round) with M = 1, 2 and auto writes containers
# that are byte-identical to each other and to P = 1's (outside /provenance;
# /config.ini differs only in its windows_in_flight line), and logs the
# same calibration loss; the log names M. Common checks: 0, -1 and x are
# refused with exit 3 and a message naming the key; auto under a memory
# cgroup with room for 2 windows but not 4 (P = 2, where auto would be 4)
# lowers M to 2, says so, and gives the statistics of an unconstrained run.
# Chunks ([calibration] chunk_tokens = 20: 20, 20 and 8 rows of each
# window per pipeline message) give, for each P, the container of P = 1 with
# the same chunks, the log says so, and the loss stays within 1e-6 of whole
# windows'; chunk_tokens = -1 is refused.
# Usage: test_windows_in_flight.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh)
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
ref=$(ref_dir "$tmp")
small=(--set calibration.n_samples=5 --set calibration.seq_len=48 --set quantize.encoder=fast)

# config.ini of a container without its output path and windows_in_flight line
config_ini() {
  HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import sys, h5py
sys.stdout.write(h5py.File(sys.argv[1], "r")["config.ini"][...].tobytes().decode())' "$1" |
    sed "s|$2||g" | grep -v '^windows_in_flight = '
}

for p in $test_ranks; do
  auto=$((p > 1 ? 2 * p : 1))
  auto=$((auto < 5 ? auto : 5))
  # the sanitizer build (RAANA_TEST_QUICK) runs M = 1 and the ragged M = 2
  for m in 1 2 $([ "${RAANA_TEST_QUICK:-0}" = 1 ] || echo auto); do
    out_h5=$tmp/p$p-m$m.h5
    run "$mpiexec" -n "$p" "$mpi_bin" "$job" "${small[@]}" --set "output.path=$out_h5.tmp" \
      --set calibration.windows_in_flight=$m
    expect_rc 0 "P=$p M=$m"
    want=$([ "$m" = auto ] && echo "$auto" || echo "$m")
    expect_err "calibrate: 5 windows of 48 tokens, $want in flight" "P=$p M=$m: the log names M"
    mv "$out_h5.tmp" "$out_h5"
    config_ini "$out_h5" "$out_h5.tmp" >"$tmp/config-p$p-m$m.ini"
    grep '^calibration: ' <<<"$out" >"$tmp/loss-p$p-m$m.txt"
    grep -q 'loss [0-9]' "$tmp/loss-p$p-m$m.txt" && ok || bad "P=$p M=$m: no loss line: $out"
    if [ "$p" = 1 ] && [ "$m" = 1 ]; then
      cp "$out_h5" "$ref/p1-m1.h5" && cp "$tmp/loss-p1-m1.txt" "$ref/loss.txt" &&
        cp "$tmp/config-p1-m1.ini" "$ref/config.ini"
      continue
    fi
    has_ref "$ref/p1-m1.h5" "P=$p M=$m" || continue
    HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$ref/p1-m1.h5" \
      "$out_h5" --ignore config.ini >/dev/null && ok || bad "P=$p M=$m: container differs from P=1 M=1"
    cmp -s "$ref/config.ini" "$tmp/config-p$p-m$m.ini" && ok ||
      bad "P=$p M=$m: config.ini differs from P=1 M=1 beyond windows_in_flight"
    cmp -s "$ref/loss.txt" "$tmp/loss-p$p-m$m.txt" && ok ||
      bad "P=$p M=$m: loss $(cat "$tmp/loss-p$p-m$m.txt") differs from P=1 M=1 $(cat "$ref/loss.txt")"
  done
  # chunks of a window as pipeline messages: the same result for every P
  out_h5=$tmp/p$p-chunks.h5
  run "$mpiexec" -n "$p" "$mpi_bin" "$job" "${small[@]}" --set "output.path=$out_h5" \
    --set calibration.windows_in_flight=2 --set calibration.chunk_tokens=20
  expect_rc 0 "P=$p chunks"
  expect_err "calibrate: 5 windows of 48 tokens in chunks of 20, 2 in flight" "P=$p: the log names chunks"
  loss=$(sed -n 's/^calibration: .* loss \([0-9.]*\)$/\1/p' <<<"$out")
  whole=$(sed -n 's/^calibration: .* loss \([0-9.]*\)$/\1/p' "$tmp/loss-p$p-m1.txt")
  awk -v a="$loss" -v b="$whole" 'BEGIN { d = a - b; exit !(a > 0 && d * d < 1e-12 * b * b) }' &&
    ok || bad "P=$p chunks: loss $loss, whole windows $whole"
  if [ "$p" = 1 ]; then
    cp "$out_h5" "$ref/p1-chunks.h5"
  elif has_ref "$ref/p1-chunks.h5" "P=$p chunks"; then
    HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$ref/p1-chunks.h5" \
      "$out_h5" --ignore config.ini >/dev/null && ok || bad "P=$p chunks: container differs from P=1's"
  fi
done
[ "$test_common" = 1 ] || { finish; exit; }

run "$mpi_bin" --dry-run --set calibration.chunk_tokens=-1 "$job"
expect_rc 3 "chunk_tokens = -1"
expect_err "calibration.chunk_tokens" "chunk_tokens = -1 names the key"
expect_one_error_line "chunk_tokens = -1"

# the key's values: an integer >= 1 or auto
for v in 0 -1 x; do
  run "$mpi_bin" --dry-run --set "calibration.windows_in_flight=$v" "$job"
  expect_rc 3 "windows_in_flight = $v"
  expect_err "calibration.windows_in_flight" "windows_in_flight = $v names the key"
  expect_one_error_line "windows_in_flight = $v"
done
printf '[model]\npath = %s\n[calibration]\nwindows_in_flight = 0\n' "$src/tests/data/kjv-tiny" \
  >"$tmp/zero.ini"
run "$mpi_bin" --dry-run "$tmp/zero.ini"
expect_rc 3 "windows_in_flight = 0 in a file"
expect_err "zero.ini:4: [calibration] windows_in_flight: 0 is out of range [1, 1000000] (or auto)" \
  "windows_in_flight = 0 in a file"
# the dry run states M
run "$mpiexec" -n 2 "$mpi_bin" --dry-run "$job" --set calibration.n_samples=8
expect_out "calibration activations (4 windows in flight, auto:" "dry run P=2 auto"
run "$mpi_bin" --dry-run "$job" --set calibration.n_samples=8 --set calibration.windows_in_flight=3
expect_out "calibration activations (3 windows in flight)" "dry run M=3"

# auto under a memory cgroup (a fake hierarchy mirroring /proc/self/cgroup)
# whose room holds the plan's peak with 2 windows in flight but not with 3
long=(--set calibration.text_file="$src/tests/data/kjv-tiny/heldout.txt"
  --set calibration.n_samples=8 --set calibration.seq_len=256)
room=$("$mpiexec" -n 2 "$mpi_bin" --dry-run "$job" "${long[@]}" \
  --set calibration.windows_in_flight=2 | "$py" -c '
import re, sys
peaks = [float(m[1]) for m in re.finditer(r"^\s+\d+\s+\S+\s+\d+\s+\d+\s+([0-9.]+) MiB", sys.stdin.read(), re.M)]
# the rank check: peak - 28 MiB process + one 128 MiB OpenBLAS buffer; +3 MiB < one more window
print(int((max(peaks) - 28 + 128 + 3) * 1048576))')
cg=$tmp/cgroup
fake_cgroup "$cg" "$room"
run "$mpiexec" -n 2 -x RAANA_CGROUP_ROOT="$cg" "$mpi_bin" --calibrate-only "$job" "${long[@]}" \
  --set "output.path=$tmp/fit.h5"
expect_rc 0 "auto in a cgroup"
expect_err "calibrate: 8 windows of 256 tokens, 2 in flight (auto, lowered to fit the memory limits)" \
  "auto in a cgroup lowers M to 2"
run "$mpiexec" -n 2 "$mpi_bin" --calibrate-only "$job" "${long[@]}" --set "output.path=$tmp/free.h5"
expect_rc 0 "auto without limits"
expect_err "calibrate: 8 windows of 256 tokens, 4 in flight" "auto without limits: M = 4"
cmp -s "$tmp/fit.h5.calibration.json" "$tmp/free.h5.calibration.json" && ok ||
  bad "auto in a cgroup: statistics differ from the unconstrained run"
# room for no window at all: the usual out-of-memory error, not a hang
find "$cg" \( -name memory.max -o -name memory.limit_in_bytes \) -exec sh -c 'echo 104857600 >"$1"' _ {} \;
run "$mpiexec" -n 2 -x RAANA_CGROUP_ROOT="$cg" "$mpi_bin" --calibrate-only "$job" "${long[@]}" \
  --set "output.path=$tmp/none.h5"
expect_rc 6 "auto in a 100 MiB cgroup"; expect_err "memory cgroup" "auto in a 100 MiB cgroup"
finish

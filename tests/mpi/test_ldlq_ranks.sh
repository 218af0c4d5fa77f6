#!/usr/bin/env bash
# test_ldlq_ranks.sh — [quantize] ldlq on the fixture job (avg_bits 2.5) and
# on the Mixtral fixture for P = 1, 2, 3, 4: every container byte-identical
# to P = 1 outside /provenance (grams summed in window order on each block's
# owner, sent with the weights to the rank that encodes the layer), also
# with one window in flight and with an expert team of 2. Mixtral's
# attention codes change and its experts' do not (no gram: routed tokens).
# Common checks: the
# codes equal an independent float64 numpy LDLQ (tests/py/check_ldlq.py,
# against the same job without ldlq for the grid), and the layers differ
# from it; a rank killed while quantizing, then the same command again,
# gives the same container with the finished layers reused (calibration
# runs again: its grams are not saved); a changed ldlq_damp re-encodes
# every layer; ldlq with [calibration] statistics is refused (exit 3).
# Under RAANA_TEST_QUICK (the sanitizer build) the Mixtral runs, one window
# in flight and the damping's re-encode are left to the Release build.
# Usage: test_ldlq_ranks.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh)
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/kjv.h5
ldlq=(--set quantize.ldlq=true --set quantize.avg_bits=2.5)
ref=$(ref_dir "$tmp")
same_as() { # same_as REF FILE what
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$1" "$2" \
    --ignore config.ini >/dev/null && ok || bad "$3: container differs from P=1's"
}

moe_window_job "$tmp/moe.ini" "$src/tests/data/mixtral-tiny-random" 3 "$tmp/moe.h5"
quick=${RAANA_TEST_QUICK:-0}
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" "$job" --set "output.path=$out_h5" "${ldlq[@]}"
  expect_rc 0 "ldlq job P=$p"
  expect_out "allocation: target 2.5 bits" "ldlq job P=$p"
  mv "$out_h5" "$tmp/p$p.h5"
  if [ "$quick" != 1 ]; then
    run "$mpiexec" -n "$p" "$mpi_bin" "$tmp/moe.ini" --set quantize.ldlq=true
    expect_rc 0 "ldlq Mixtral P=$p"
    mv "$tmp/moe.h5" "$tmp/moe$p.h5"
  fi
  if [ "$p" = 1 ]; then
    cp "$tmp/p1.h5" "$ref/"
    [ "$quick" = 1 ] || cp "$tmp/moe1.h5" "$ref/"
    continue
  fi
  has_ref "$ref/p1.h5" "P=$p" || continue
  same_as "$ref/p1.h5" "$tmp/p$p.h5" "ldlq P=$p"
  [ "$quick" = 1 ] || same_as "$ref/moe1.h5" "$tmp/moe$p.h5" "ldlq Mixtral P=$p"
done
[ "$test_common" = 1 ] || { finish; exit; }
has_ref "$ref/p1.h5" "the checks on P=1's container" || { finish; exit; }

# the grid comes from the same job without ldlq (the allocation is the same)
run "$mpi_bin" "$job" --set "output.path=$tmp/plain.h5" --set quantize.avg_bits=2.5
expect_rc 0 "the job without ldlq"
HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/check_ldlq.py" "$tmp/plain.h5" "$ref/p1.h5" \
  "$src/tests/data/kjv-tiny" 1 && ok || bad "raana's LDLQ codes against numpy's"
HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/plain.h5" \
  "$ref/p1.h5" --ignore config.ini >/dev/null 2>&1 && bad "ldlq changed no code" || ok

if [ "$quick" != 1 ]; then
  # one window in flight (grams summed in the same order), and Mixtral with an
  # expert team of 2 on 4 ranks
  run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" "${ldlq[@]}" \
    --set calibration.windows_in_flight=1
  expect_rc 0 "ldlq, one window in flight"
  same_as "$ref/p1.h5" "$out_h5" "ldlq, one window in flight"
  rm -f "$out_h5"
  run "$mpiexec" -n 4 "$mpi_bin" "$tmp/moe.ini" --set quantize.ldlq=true \
    --set calibration.expert_ranks=2
  expect_rc 0 "ldlq Mixtral, expert team of 2"
  same_as "$ref/moe1.h5" "$tmp/moe.h5" "ldlq Mixtral, expert team of 2"
  run "$mpi_bin" "$tmp/moe.ini" --set "output.path=$tmp/moe-plain.h5"
  expect_rc 0 "Mixtral without ldlq"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" - "$tmp/moe-plain.h5" "$ref/moe1.h5" <<'PY' && ok ||
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r")["layers"], h5py.File(sys.argv[2], "r")["layers"]
bad = [n for n in a if np.array_equal(a[n]["codes"][...], b[n]["codes"][...]) == ("experts" not in n)]
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad or len(a) != 32 else 0)
PY
    bad "Mixtral: ldlq must change the attention's codes and no expert's"
fi

# a rank dies in its 10th quantized layer; the rerun reuses the finished ones
run env RAANA_FAULT_INJECT=quantize:1:10 "$mpiexec" -n 2 "$mpi_bin" "$job" \
  --set "output.path=$out_h5" "${ldlq[@]}"
[ "$rc" -ne 0 ] && [ ! -e "$out_h5" ] && ok || bad "kill in quantize: rc $rc, or output exists"
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" "${ldlq[@]}"
expect_rc 0 "rerun after the kill"
grep -qE "layers: [0-9]+ encoded, [1-9][0-9]* resumed" <<<"$out" && ok ||
  bad "rerun after the kill: no layer reused: $out"
grep -q "(resumed)" <<<"$out" && bad "calibration resumed without its grams" || ok
expect_err "calibration.bin not reused: [quantize] ldlq and lowrank_rank need the layer inputs' grams" "rerun after the kill"
same_as "$ref/p1.h5" "$out_h5" "after a kill in quantize"
rm -f "$out_h5"

if [ "$quick" != 1 ]; then
  # the damping is part of every layer's fingerprint
  run env RAANA_FAULT_INJECT=write:0:10 "$mpiexec" -n 2 "$mpi_bin" "$job" \
    --set "output.path=$out_h5" "${ldlq[@]}"
  [ "$rc" -ne 0 ] && ok || bad "kill in writing: exit 0"
  run "$mpi_bin" "$job" --set "output.path=$out_h5" "${ldlq[@]}" --set quantize.ldlq_damp=0.5
  expect_rc 0 "rerun with another damping"
  expect_out "layers: 28 encoded, 0 resumed" "rerun with another damping"
  rm -f "$out_h5"
fi

run "$mpi_bin" "$job" --set "output.path=$out_h5" "${ldlq[@]}" \
  --set "calibration.statistics=$tmp/plain.h5"
expect_rc 3 "ldlq with statistics"
expect_err "[quantize] ldlq = true needs the calibration inputs' second moments" "ldlq with statistics"
[ ! -e "$out_h5" ] && ok || bad "ldlq with statistics: output written"
finish

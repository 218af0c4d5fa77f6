#!/usr/bin/env bash
# test_lowrank_ranks.sh — [quantize] lowrank_rank (low-rank compensation,
# issue 12) on the fixture job for P = 1, 2, 3, 4, with every layer's SVD
# by a team of all ranks (ScaLAPACK; lowrank_team_min_weights = 4096) when
# P > 1 (under the sanitizers the MLP's only) and by LAPACK when P = 1: every container rebuilds to P = 1's
# weights within 1e-6 relative, with the same codes (tests/py/
# compare_rebuilt.py). Common checks: the numpy reader rebuilds every
# compensated layer to 1e-6 of raana's own dequantization and finds format
# version 2 (check_container.py); the factors are the weighted optimum
# numpy's SVD gives, their bits are counted and the codes get avg_bits
# minus them (check_lowrank.py); raana-export's weights are the compensated
# layers (check_export.py); on the Mixtral fixture only the attention gets
# factors, and 3 ranks rebuild as 1; a rank killed while quantizing, then the same
# command, gives the same weights with the finished layers reused; a
# changed lowrank_damp re-encodes every layer; lowrank_rank with
# [calibration] statistics, and a rank whose factors leave the codes less
# than the lowest candidate, are refused (exit 3) with nothing written. The
# PCA trick (pca_rank = 2): P = 3 gives P = 1's container, numpy's reader
# rebuilds it and numpy's truncated SVD gives its factors (check_pca.py);
# with lowrank_rank it is refused (exit 3). Under RAANA_TEST_QUICK the PCA
# trick runs at P = 3 and is read back by numpy; the rest is Release's.
# Under RAANA_TEST_QUICK (the sanitizer build) the export, Mixtral, the numpy
# SVD check and the damping's re-encode are left to the Release build.
# Usage: test_lowrank_ranks.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC RAANA_EXPORT RAANA_INSPECT
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4 export_bin=$5 inspect_bin=$6
. "$src/tests/cli/lib.sh"
mpi_test_env
export HDF5_PLUGIN_PATH=$plugin_dir
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
fixture=$src/tests/data/kjv-tiny
out_h5=$tmp/kjv.h5
ref=$(ref_dir "$tmp")
quick=${RAANA_TEST_QUICK:-0}
# every layer's SVD by a team when P > 1; under the sanitizers only the 12
# MLP layers' (576 x 192), the attention's by LAPACK on their quantizer
team_min=4096 team_layers=28
[ "$quick" = 1 ] && team_min=100000 team_layers=12
lowrank=(--set quantize.lowrank_rank=4 --set "quantize.lowrank_team_min_weights=$team_min")
rebuilds_as() { # rebuilds_as REF FILE what
  "$py" "$src/tests/py/compare_rebuilt.py" "$1" "$2" 1e-6 >"$tmp/cmp.txt" 2>&1 && ok ||
    bad "$3: $(cat "$tmp/cmp.txt")"
}

for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" "$job" --set "output.path=$out_h5" "${lowrank[@]}"
  expect_rc 0 "lowrank job P=$p"
  if [ "$p" = 1 ]; then
    expect_err "low-rank factors of rank 4 on 28 layers; 0 SVDs by a team of 1 ranks (ScaLAPACK), 28 on one rank (LAPACK)" "P=1"
    mv "$out_h5" "$ref/p1.h5"
    continue
  fi
  expect_err "low-rank factors of rank 4 on 28 layers; $team_layers SVDs by a team of $p ranks (ScaLAPACK), $((28 - team_layers)) on one rank" "P=$p"
  has_ref "$ref/p1.h5" "P=$p" || continue
  rebuilds_as "$ref/p1.h5" "$out_h5" "lowrank P=$p"
  rm -f "$out_h5"
done
[ "$test_common" = 1 ] || { finish; exit; }
has_ref "$ref/p1.h5" "the checks on P=1's container" || { finish; exit; }
c=$ref/p1.h5

# (raana-inspect --dequantize of every layer kept for check_export.py below:
# tests/py/dequantized_cache.py)
RAANA_DEQUANTIZED_DIR=$tmp/dequantized "$py" "$src/tests/py/check_container.py" "$c" \
  "$inspect_bin" "$fixture" >"$tmp/cc.txt" 2>&1 && ok ||
  bad "check_container.py on a compensated container: $(cat "$tmp/cc.txt")"
if [ "$quick" != 1 ]; then # numpy alone: nothing for the sanitizers to see
  "$py" "$src/tests/py/check_lowrank.py" "$c" "$fixture" 0.01 >"$tmp/cl.txt" 2>&1 && ok ||
    bad "check_lowrank.py: $(cat "$tmp/cl.txt")"
fi

# raana-inspect --json: the factors in every layer's breakdown and in the allocation
"$inspect_bin" --json "$c" >"$tmp/c.json" && "$py" - "$tmp/c.json" "$c" <<'PY' && ok ||
import json, sys, h5py
d, f = json.load(open(sys.argv[1])), h5py.File(sys.argv[2], "r")
layers = [l for l in d["layers"] if l["quantized"]]
sums = all(abs(sum(l["bits_breakdown"].values()) - l["effective_bits"]) < 1e-9 for l in layers)
factors = all(l["bits_breakdown"]["factors"] > 0 for l in layers)
same = d["allocation"]["factor_bits"] == f["allocation"].attrs["factor_bits"]
sys.exit(0 if sums and factors and same and d["format_version"] == 2 else 1)
PY
  bad "raana-inspect --json on a compensated container"

if [ "$quick" != 1 ]; then
  run "$export_bin" "$c" "$tmp/f32" --dtype f32
  expect_rc 0 "export a compensated container"
  RAANA_DEQUANTIZED_DIR=$tmp/dequantized "$py" "$src/tests/py/check_export.py" "$c" "$fixture" \
    "$inspect_bin" "$tmp/f32:F32:1" >"$tmp/ce.txt" 2>&1 && ok || bad "check_export.py: $(cat "$tmp/ce.txt")"
fi

if [ "$quick" != 1 ]; then
  # a mixture of experts: the attention gets factors, no expert does (its
  # inputs are routed tokens); 3 ranks' ScaLAPACK teams rebuild as 1 rank's LAPACK
  moe_window_job "$tmp/moe.ini" "$src/tests/data/mixtral-tiny-random" 3 "$tmp/moe.h5"
  for p in 1 3; do
    run "$mpiexec" -n "$p" "$mpi_bin" "$tmp/moe.ini" --set quantize.lowrank_rank=2 \
      --set quantize.lowrank_team_min_weights=1024
    expect_rc 0 "Mixtral with factors, P=$p"
    expect_err "low-rank factors of rank 2 on 8 layers" "Mixtral with factors, P=$p"
    mv "$tmp/moe.h5" "$tmp/moe$p.h5"
  done
  rebuilds_as "$tmp/moe1.h5" "$tmp/moe3.h5" "Mixtral P=3"
  "$py" - "$tmp/moe1.h5" <<'PY' && ok || bad "Mixtral: factors on the attention only"
import sys, h5py
layers = h5py.File(sys.argv[1], "r")["layers"]
with_factors = [n for n in layers if "lowrank_rank" in layers[n].attrs]
sys.exit(0 if len(with_factors) == 8 and all("self_attn" in n for n in with_factors) else 1)
PY
fi

# a rank dies in its 10th quantized layer; the rerun reuses the finished ones
run env RAANA_FAULT_INJECT=quantize:1:10 "$mpiexec" -n 2 "$mpi_bin" "$job" \
  --set "output.path=$out_h5" "${lowrank[@]}"
[ "$rc" -ne 0 ] && [ ! -e "$out_h5" ] && ok || bad "kill in quantize: rc $rc, or output exists"
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" "${lowrank[@]}"
expect_rc 0 "rerun after the kill"
grep -qE "layers: [0-9]+ encoded, [1-9][0-9]* resumed" <<<"$out" && ok ||
  bad "rerun after the kill: no layer reused: $out"
rebuilds_as "$c" "$out_h5" "after a kill in quantize"
rm -f "$out_h5"

if [ "$quick" != 1 ]; then
  # the damping is part of every layer's fingerprint
  run env RAANA_FAULT_INJECT=write:0:10 "$mpi_bin" "$job" --set "output.path=$out_h5" \
    "${lowrank[@]}"
  [ "$rc" -ne 0 ] && ok || bad "kill in writing: exit 0"
  run "$mpi_bin" "$job" --set "output.path=$out_h5" "${lowrank[@]}" --set quantize.lowrank_damp=1
  expect_rc 0 "rerun with another damping"
  expect_out "layers: 28 encoded, 0 resumed" "rerun with another damping"
  rm -f "$out_h5"
fi

# (the statistics of P = 1's container: the refusal is the configuration's,
# whatever the file holds; no job of its own)
run "$mpi_bin" "$job" --set "output.path=$out_h5" "${lowrank[@]}" \
  --set "calibration.statistics=$c"
expect_rc 3 "lowrank with statistics"
expect_err "[quantize] lowrank_rank = 4 weights the error by the calibration inputs' second moments" \
  "lowrank with statistics"
[ ! -e "$out_h5" ] && ok || bad "lowrank with statistics: output written"
run "$mpi_bin" "$job" --set "output.path=$out_h5" "${lowrank[@]}" --set quantize.avg_bits=1.2
expect_rc 3 "factors leaving less than the lowest candidate"
expect_err "[quantize] lowrank_rank = 4 takes 0.5333 bits per quantized weight of avg_bits = 1.2" \
  "factors leaving less than the lowest candidate"
[ ! -e "$out_h5" ] && ok || bad "factors over the budget: output written"

# the PCA trick (pca_rank): W's top singular directions as the same factors,
# the codes for the rest; every layer, SVD on its quantizer, so 3 ranks give
# 1 rank's container byte for byte; numpy's truncated SVD (check_pca.py)
# (under the sanitizers P = 3 only; the comparison with P = 1 and numpy's SVD
# are left to the Release build)
pca_ranks="1 3"
[ "$quick" = 1 ] && pca_ranks=3
for p in $pca_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" "$job" --set "output.path=$tmp/pca$p.h5" \
    --set quantize.pca_rank=2 --set quantize.avg_bits=3.2
  expect_rc 0 "pca_rank = 2, P=$p"
  expect_err "the PCA trick holds out the top 2 singular directions of 28 layers" "pca_rank, P=$p"
done
"$py" "$src/tests/py/check_container.py" "$tmp/pca3.h5" "$inspect_bin" "$fixture" && ok ||
  bad "check_container with pca_rank"
if [ "$quick" != 1 ]; then
  "$py" "$src/tests/py/compare_containers.py" "$tmp/pca1.h5" "$tmp/pca3.h5" --ignore config.ini &&
    ok || bad "pca_rank: P=3 differs from P=1"
  "$py" "$src/tests/py/check_pca.py" "$tmp/pca1.h5" "$fixture" 2 && ok || bad "check_pca.py"
fi
run "$mpi_bin" "$job" --set "output.path=$out_h5" --set quantize.pca_rank=2 "${lowrank[@]}"
expect_rc 3 "pca_rank with lowrank_rank"
expect_err "lowrank_rank = 4 and pca_rank = 2 both store a layer's low-rank factors" \
  "pca_rank with lowrank_rank"
[ ! -e "$out_h5" ] && ok || bad "pca_rank with lowrank_rank: output written"
finish

#!/usr/bin/env bash
# bench_split.sh — layers split by output columns ([quantize]
# split_min_weights, docs/SCALING.md "Layers split by output columns"). The
# quantize stage alone (calibration statistics made once beforehand, so no
# calibration activations) of a 2-block Llama-2-7B-shaped checkpoint
# (bench/make_real_shape_checkpoint.py) on 2 ranks, avg_bits 3, exact
# encoder, one thread per rank: every layer whole (the baseline,
# split_min_weights = 2147483647) against every layer split
# (split_min_weights = 1), alternating, the faster of 2 runs each: wall
# time, the quantize stage's time, each rank's measured peak (VmHWM) and
# the dry run's estimate of it. The containers must be identical (outside
# /provenance and config.ini). Prints markdown.
# Usage: bench_split.sh BUILD_DIR [CHECKPOINT_DIR]
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
bench_setup # MPI settings, $tmp
model=${2:-$tmp/model}
if [ ! -f "$model/config.json" ]; then
  /usr/bin/python3 "$src/bench/make_real_shape_checkpoint.py" "$model" 7b 2 >/dev/null
fi
printf '%s\n' "[model]" "path = $model" "[calibration]" "source = text" \
  "text_file = $src/tests/data/kjv-tiny/heldout.txt" "n_samples = 2" "seq_len = 128" \
  "[quantize]" "avg_bits = 3" "[output]" "path = $tmp/out.h5" "overwrite = true" >"$tmp/job.ini"
mpirun -n 2 "$build/raana-mpi" --calibrate-only "$tmp/job.ini" >/dev/null 2>&1
stats=(--set "calibration.statistics=$tmp/out.h5.calibration.json")
modes=(2147483647 1)

# run MIN_WEIGHTS: one job; prints "wall quantize | rank peaks | time-line"
run() {
  /usr/bin/time -f '%e' -o "$tmp/usage" mpirun -n 2 "$build/raana-mpi" "$tmp/job.ini" \
    "${stats[@]}" --set "quantize.split_min_weights=$1" --set "output.path=$tmp/out$1.h5" \
    >"$tmp/out.txt" 2>"$tmp/log.txt"
  local line peaks
  line=$(sed -n 's/^time: //p' "$tmp/out.txt")
  peaks=$(sed -n 's/.* memory: rank \([0-9]*\) peak \([0-9.]* [KMG]iB\) (estimate \([0-9.]* [KMG]iB\).*/rank \1 \2 (est. \3)/p' \
    "$tmp/log.txt" | paste -sd ';' -)
  echo "$(cat "$tmp/usage") $(sed -n 's/.*quantize \([0-9.]*\) s.*/\1/p' <<<"$line") | $peaks | $line"
}
declare -A best
for rep in 1 2; do
  for m in "${modes[@]}"; do
    keep_faster "$m" "$(run "$m")" # a failed run stops the script (set -e)
  done
done
HDF5_PLUGIN_PATH=$build/hdf5-plugin /usr/bin/python3 "$src/tests/py/compare_containers.py" \
  "$tmp/out${modes[0]}.h5" "$tmp/out${modes[1]}.h5" --ignore config.ini >/dev/null
core=$(sed -n 's/^blas: .*; core \(\S*\),.*/\1/p' "$tmp/log.txt")
echo "BLAS core $core, 1 OpenBLAS and 1 OpenMP thread per rank; 2 ranks; the faster of 2 runs each;"
echo "the two containers are identical outside /provenance and config.ini."
echo
echo "| layers | wall s | quantize s | peak per rank (VmHWM; the dry run's estimate) | stage times |"
echo "|---|---|---|---|---|"
for m in "${modes[@]}"; do
  IFS='|' read -r times peaks line <<<"${best[$m]}"
  read -r wall quant <<<"$times"
  name=$([ "$m" = 1 ] && echo "split (split_min_weights = 1)" || echo "whole (baseline)")
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$wall" "$quant" "${peaks# }" "${line# }"
done

#!/usr/bin/env bash
# fit_cost_model.sh — the dry run's cost model (docs/SCALING.md, "Cost
# model") fitted on one rank running 2 Llama-2-7B-shaped blocks, then
# checked against 1- and 2-rank runs of 4 blocks (issue 11 acceptance: both
# end-to-end times within 25%). The job is bench_ranks.sh's: 4 calibration
# windows of 256 tokens, avg_bits 3, exact encoder, one thread per rank.
# The fit, from the 2-block run's `time:` line and its dry run at unit rates:
#   calibrate_gflops_per_thread = the dry run's calibration FLOPs / calibrate seconds
#   quantize_scale   = quantize seconds / the dry run's quantize at scale 1
#   load_ns_per_weight = load seconds / weights (read_gb_per_s = 1000: the
#                        checkpoint is in the page cache here, so its read
#                        bandwidth is not measured)
#   write_mb_per_s   = the dry run's container bytes / write seconds
# Prints markdown. Usage: fit_cost_model.sh BUILD_DIR [DIR_2_BLOCKS DIR_4_BLOCKS]
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
bench_setup # MPI settings, $tmp
m2=${2:-$tmp/m2} m4=${3:-$tmp/m4}
[ -f "$m2/config.json" ] || /usr/bin/python3 "$src/bench/make_real_shape_checkpoint.py" "$m2" 7b 2 >/dev/null
[ -f "$m4/config.json" ] || /usr/bin/python3 "$src/bench/make_real_shape_checkpoint.py" "$m4" 7b 4 >/dev/null
write_job() {
  printf '%s\n' "[model]" "path = $2" "[calibration]" "source = text" \
    "text_file = $src/tests/data/kjv-tiny/heldout.txt" "n_samples = 4" "seq_len = 256" \
    "[quantize]" "avg_bits = 3" "[output]" "path = $tmp/out.h5" "overwrite = true" >"$1"
}
write_job "$tmp/job2.ini" "$m2"
write_job "$tmp/job4.ini" "$m4"
stage() { sed -n "s/.* $1 \([0-9.]*\) s.*/\1/p" <<<"$2"; }
# predict JOB P SETS...: the dry run's "predicted stages" line
predict() {
  local job=$1 p=$2
  shift 2
  mpirun -n "$p" "$build/raana-mpi" "$job" --dry-run "$@" | grep -E '^predicted (stages|seconds)'
}
# field NAME LINE: the number after NAME in the dry run's line for scripts
field() { sed -n "s/^predicted seconds.* $1 \([0-9.e+-]*\).*/\1/p" <<<"$2"; }
# measure JOB P: "wall | time-line"
measure() {
  /usr/bin/time -f '%e' -o "$tmp/wall" mpirun -n "$2" "$build/raana-mpi" "$1" >"$tmp/out.txt" 2>"$tmp/log.txt"
  echo "$(cat "$tmp/wall") | $(sed -n 's/^time: //p' "$tmp/out.txt")"
}

unit=(--set cost.read_gb_per_s=1000 --set cost.load_ns_per_weight=1 --set cost.calibrate_gflops_per_thread=1
  --set cost.quantize_scale=1 --set cost.write_mb_per_s=1)
dry=$(predict "$tmp/job2.ini" 1 "${unit[@]}")
fit=$(measure "$tmp/job2.ini" 1)
times=${fit#*| }
flops=$(field calibrate_flops "$dry")
bytes=$(field container_bytes "$dry")
q1=$(field quantize "$dry")
weights=$(mpirun -n 1 "$build/raana-mpi" "$tmp/job2.ini" --dry-run | awk '$1 == 0 && $2 ~ /^0-/ {print $3}')
gflops=$(awk -v f="$flops" -v s="$(stage calibrate "$times")" 'BEGIN{printf "%.1f", f / 1e9 / s}')
scale=$(awk -v q="$q1" -v s="$(stage quantize "$times")" 'BEGIN{printf "%.3f", s / q}')
load_ns=$(awk -v w="$weights" -v s="$(stage load "$times")" 'BEGIN{printf "%.2f", s / w * 1e9}')
write=$(awk -v b="$bytes" -v s="$(stage write "$times")" 'BEGIN{printf "%.0f", b / 1e6 / s}')
rates=(--set cost.read_gb_per_s=1000 --set cost.load_ns_per_weight="$load_ns"
  --set cost.calibrate_gflops_per_thread="$gflops" --set cost.quantize_scale="$scale"
  --set cost.write_mb_per_s="$write")
core=$(sed -n 's/^blas: .*; core \(\S*\),.*/\1/p' "$tmp/log.txt")
echo "Fitted on 2 blocks, 1 rank (BLAS core $core): wall ${fit%% |*} s; $times"
echo
echo "Rates: \`${rates[*]}\`"
echo
echo "| 4 blocks | predicted job | measured wall | measured stages | predicted / measured |"
echo "|---|---|---|---|---|"
for p in 1 2; do
  line=$(predict "$tmp/job4.ini" "$p" "${rates[@]}")
  pred=$(field job "$line")
  got=$(measure "$tmp/job4.ini" "$p")
  printf '| %d rank%s | %s s (%s) | %s s | %s | **%.2f** |\n' "$p" "$([ "$p" = 1 ] || echo s)" "$pred" \
    "$(sed -n 's/^predicted stages: \(.*\); job.*/\1/p' <<<"$line")" "${got%% |*}" "${got#*| }" \
    "$(awk -v a="$pred" -v b="${got%% |*}" 'BEGIN{print a / b}')"
done

#!/usr/bin/env bash
# bench_chunks.sh — chunks of a window as calibration's pipeline unit
# ([calibration] chunk_tokens, docs/CALIBRATION.md). The whole job on a
# 2-block Llama-2-7B-shaped checkpoint (bench/make_real_shape_checkpoint.py)
# with 2 calibration windows of 1024 tokens (kjv-tiny's heldout.txt), avg_bits
# 3, fast encoder, one thread per rank, on 1 and 2 ranks, with whole windows
# (chunk_tokens = 0, the baseline) and chunks of 256 tokens, alternating; the
# faster of 2 runs each: wall time and the job's stage times. Prints markdown.
# Usage: bench_chunks.sh BUILD_DIR [CHECKPOINT_DIR]
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
  "text_file = $src/tests/data/kjv-tiny/heldout.txt" "n_samples = 2" "seq_len = 1024" \
  "[quantize]" "avg_bits = 3" "encoder = fast" "[output]" "path = $tmp/out.h5" \
  "overwrite = true" >"$tmp/job.ini"

# run CHUNK P: one job; prints "wall calibrate | time-line"
run() {
  /usr/bin/time -f '%e' -o "$tmp/usage" mpirun -n "$2" "$build/raana-mpi" "$tmp/job.ini" \
    --set "calibration.chunk_tokens=$1" >"$tmp/out.txt" 2>"$tmp/log.txt"
  local line
  line=$(sed -n 's/^time: //p' "$tmp/out.txt")
  echo "$(cat "$tmp/usage") $(sed -n 's/.*calibrate \([0-9.]*\) s.*/\1/p' <<<"$line") | $line"
}
declare -A best
for rep in 1 2; do
  for chunk in 0 256; do
    for p in 1 2; do
      line=$(run "$chunk" "$p") # a failed run stops the script (set -e)
      keep_faster "$chunk,$p" "$line"
    done
  done
done
core=$(sed -n 's/^blas: .*; core \(\S*\),.*/\1/p' "$tmp/log.txt")
echo "BLAS core $core, 1 OpenBLAS and 1 OpenMP thread per rank; 2 windows of 1024 tokens; the faster of 2 runs each."
echo
echo "| chunk_tokens | ranks | wall s | calibrate s | stage times | speedup 1 -> 2 (wall) |"
echo "|---|---|---|---|---|---|"
read -r w1 _ <<<"${best[0,1]}"
for chunk in 0 256; do
  name=$([ "$chunk" = 0 ] && echo "0 (whole windows, baseline)" || echo "$chunk")
  for p in 1 2; do
    read -r w c _ <<<"${best[$chunk,$p]}"
    speed=$([ "$p" = 2 ] && awk -v a="$w1" -v b="$w" 'BEGIN{printf "**%.2f**", a / b}' || echo "")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$p" "$w" "$c" "${best[$chunk,$p]#*| }" "$speed"
  done
done

#!/usr/bin/env bash
# bench_ranks.sh — do ranks speed the job up (issue 11)? The whole job on a
# 4-block Llama-2-7B-shaped checkpoint (bench/make_real_shape_checkpoint.py,
# BF16, 1.54 GiB) with 4 calibration windows of SEQ_LEN tokens (default 256;
# kjv-tiny's heldout.txt), avg_bits 3, exact encoder, one thread per rank, on 1 and 2
# ranks: wall time, CPU time of all ranks (user + system, /usr/bin/time of
# mpirun, which waits for its ranks), minor page faults and the job's stage
# times. Each configuration runs twice with huge-page advice (the default)
# and twice with RAANA_HUGE_PAGES=0 (the baseline, as before 2026-12-01),
# alternating, and the faster run of each is shown (with SEQ_LEN other than
# 256 only the default, huge pages advised). Acceptance: 1 -> 2 ranks cuts
# the wall time by >= 1.7x, and 2 ranks use <= 1.15x the CPU time of 1.
# Prints markdown. Usage: bench_ranks.sh BUILD_DIR [CHECKPOINT_DIR [SEQ_LEN]]
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
bench_setup # MPI settings, $tmp
model=${2:-$tmp/model}
seq_len=${3:-256}
huge_modes="1 0"
[ "$seq_len" = 256 ] || huge_modes=1
if [ ! -f "$model/config.json" ]; then
  /usr/bin/python3 "$src/bench/make_real_shape_checkpoint.py" "$model" 7b 4 >/dev/null
fi
printf '%s\n' "[model]" "path = $model" "[calibration]" "source = text" \
  "text_file = $src/tests/data/kjv-tiny/heldout.txt" "n_samples = 4" "seq_len = $seq_len" \
  "[quantize]" "avg_bits = 3" "[output]" "path = $tmp/out.h5" "overwrite = true" >"$tmp/job.ini"

# run HP P: one job; prints "wall cpu faults | time-line"
run() {
  /usr/bin/time -f '%e %U %S %R' -o "$tmp/usage" \
    mpirun -x RAANA_HUGE_PAGES="$1" -n "$2" "$build/raana-mpi" "$tmp/job.ini" >"$tmp/out.txt" 2>"$tmp/log.txt"
  read -r wall user sys faults <"$tmp/usage"
  echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN{print u + s}') $faults | $(sed -n 's/^time: //p' "$tmp/out.txt")"
}
declare -A best
for rep in 1 2; do
  for hp in $huge_modes; do
    for p in 1 2; do
      line=$(run "$hp" "$p") # a failed run stops the script (set -e)
      keep_faster "$hp,$p" "$line"
    done
  done
done
core=$(sed -n 's/^blas: .*; core \(\S*\),.*/\1/p' "$tmp/log.txt")
echo "BLAS core $core, 1 OpenBLAS and 1 OpenMP thread per rank; 4 windows of $seq_len tokens; the faster of 2 runs each."
echo
echo "| huge pages | ranks | wall s | CPU s (all ranks) | minor faults | stage times | speedup 1 -> 2 | CPU 2 / CPU 1 |"
echo "|---|---|---|---|---|---|---|---|"
for hp in $huge_modes; do
  read -r w1 c1 f1 _ <<<"${best[$hp,1]}"
  read -r w2 c2 f2 _ <<<"${best[$hp,2]}"
  name=$([ "$hp" = 1 ] && echo "advised (default)" || echo "off (RAANA_HUGE_PAGES=0)")
  printf '| %s | 1 | %s | %.1f | %s | %s | | |\n' "$name" "$w1" "$c1" "$f1" "${best[$hp,1]#*| }"
  printf '| %s | 2 | %s | %.1f | %s | %s | **%.2f** | **%.2f** |\n' "$name" "$w2" "$c2" "$f2" \
    "${best[$hp,2]#*| }" "$(awk -v a="$w1" -v b="$w2" 'BEGIN{print a / b}')" \
    "$(awk -v a="$c2" -v b="$c1" 'BEGIN{print a / b}')"
done

#!/usr/bin/env bash
# bench_pipeline.sh — the whole job on a synthetic LLaMA checkpoint (random
# BF16 weights, hidden 1024, intermediate 2816, 4 blocks; about 56M
# parameters): time per stage for P = 1 and 2, encoder exact and fast, and
# the write stage against a baseline measured in the same run: writing the
# same number of bytes with dd (and fsync) to the same directory.
# Prints a markdown table. Usage: bench_pipeline.sh BUILD_DIR
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
bench_setup # MPI settings, $tmp
/usr/bin/python3 "$src/bench/make_synthetic_model.py" "$tmp/model" 1024 2816 4 16 >/dev/null
bench_write_job "$tmp/job.ini"
stage() { sed -n "s/.* $1 \([0-9.]*\) s.*/\1/p" <<<"$2"; }
echo "| ranks | encoder | load s | calibrate s | quantize s | write s | container MiB | dd same bytes s | write / dd |"
echo "|---|---|---|---|---|---|---|---|---|"
for enc in exact fast; do
  for p in 1 2; do
    best=""
    for rep in 1 2 3; do
      line=$(mpirun -n "$p" "$build/raana-mpi" "$tmp/job.ini" --set quantize.encoder=$enc | grep '^time:')
      w=$(stage write "$line")
      if [ -z "$best" ] || awk -v a="$w" -v b="$(stage write "$best")" 'BEGIN{exit !(a<b)}'; then best=$line; fi
    done
    bytes=$(stat -c %s "$tmp/out.h5")
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$tmp/dd.bin" bs=1M count=$(((bytes + 1048575) / 1048576)) conv=fsync status=none
    t1=$(date +%s.%N)
    dd_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
    rm -f "$tmp/dd.bin"
    printf '| %d | %s | %s | %s | %s | %s | %.1f | %s | %.2f |\n' "$p" "$enc" "$(stage load "$best")" \
      "$(stage calibrate "$best")" "$(stage quantize "$best")" "$(stage write "$best")" \
      "$(awk -v b="$bytes" 'BEGIN{print b/1048576}')" "$dd_s" \
      "$(awk -v w="$(stage write "$best")" -v d="$dd_s" 'BEGIN{print w/d}')"
  done
done

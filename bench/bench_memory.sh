#!/usr/bin/env bash
# bench_memory.sh — peak memory of one rank on a 2-block Llama-2-7B-shaped
# checkpoint (bench/make_real_shape_checkpoint.py, BF16, 2048-token
# vocabulary), 1 rank, 2 calibration windows of 256 tokens, both in flight
# (windows_in_flight = 2: the measurement predates rounds), fast encoder:
# the job's own report of VmHWM against its f32 shard, the documented
# working sets and the dry-run estimate (issue 11 acceptance: peak <= 1.3 x
# (f32 shard + activations), estimate within 15% of the peak). Prints
# markdown rows. Usage: bench_memory.sh BUILD_DIR
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
bench_setup # MPI settings, $tmp
/usr/bin/python3 "$src/bench/make_real_shape_checkpoint.py" "$tmp/model" 7b 2 >/dev/null
bench_write_job "$tmp/job.ini" "encoder = fast"
"$build/raana-mpi" "$tmp/job.ini" >"$tmp/out.txt" 2>"$tmp/log.txt"
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }
params=$(sed -n 's/^model: .*(llama, \([0-9]*\) parameters.*/\1/p' "$tmp/log.txt")
shard=$(mib $((params * 4)))
# documented calibration activations (docs/SCALING.md): 2 windows in flight x 2
# blocks x T (8H + 3I + 2 + heads) + 4TH + 2TI + 2*128^2 + T + 2TV + 2 (TH + 1)
# floats, T = 256
acts=$(mib $((4 * (2 * 2 * 256 * (8 * 4096 + 3 * 11008 + 2 + 32) + 4 * 256 * 4096 + 2 * 256 * 11008 + 2 * 128 * 128 + 256 + 2 * 256 * 2048 + 2 * (256 * 4096 + 1)))))
line=$(grep '^memory: rank 0 peak' "$tmp/log.txt")
peak=$(sed -n 's/^memory: rank 0 peak \([0-9.]*\) MiB.*/\1/p' <<<"$line")
est=$(sed -n 's/.*(estimate \([0-9.]*\) MiB.*/\1/p' <<<"$line")
anon=$(sed -n 's/.*anon \([0-9.]*\) MiB.*/\1/p' <<<"$line")
file=$(sed -n 's/.*file-backed \([0-9.]*\) MiB.*/\1/p' <<<"$line")
core=$(sed -n 's/^blas: .*; core \(\S*\),.*/\1/p' "$tmp/log.txt")
times=$(sed -n 's/^time: //p' "$tmp/out.txt")
echo "| f32 shard | activations (documented) | estimate | measured VmHWM | at the end: anon, file | peak / (shard + activations) | estimate / peak | BLAS core |"
echo "|---|---|---|---|---|---|---|---|"
printf '| %s MiB | %s MiB | %s MiB | %s MiB | %s, %s MiB | %.2f | %.3f | %s |\n' "$shard" "$acts" "$est" \
  "$peak" "$anon" "$file" "$(awk -v p="$peak" -v s="$shard" -v a="$acts" 'BEGIN{print p / (s + a)}')" \
  "$(awk -v p="$peak" -v e="$est" 'BEGIN{print e / p}')" "$core"
echo
echo "Stage times of that run (not meaningful on a shared machine): $times"

#!/usr/bin/env bash
# test_dry_run_ranks.sh — `mpirun -n P raana-mpi --dry-run` for P = 1..4:
# the plan above the rank table is identical to P = 1, the split is
# contiguous and balanced within one block, the predicted time has a row
# per rank and sums its stages, only rank 0 prints, the ranks
# that will idle are named with the reason (no block: P = 6; fewer windows
# than pipeline stages: P >= 3 with 2 windows, P = 2 with 1), and a
# failure on one rank ends every rank with that rank's message.
# Usage: test_dry_run_ranks.sh RAANA_MPI SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh)
set -u
bin=$1 src=$2 mpiexec=$3
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_rmaps_base_oversubscribe=1
job=$src/jobs/kjv-tiny.ini
plan_part() { sed '/^ranks:/,$d' <<<"$1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(ref_dir "$tmp")

for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$bin" --dry-run "$job"
  expect_rc 0 "P=$p"
  [ "$p" = 1 ] && plan_part "$out" >"$ref/plan.txt"
  if has_ref "$ref/plan.txt" "P=$p"; then
    [ "$(plan_part "$out")" = "$(cat "$ref/plan.txt")" ] && ok || bad "P=$p: plan differs from P=1"
  fi
  [ "$(grep -c 'dry run' <<<"$out")" -eq 1 ] && ok || bad "P=$p: printed more than once"
  # rank rows: "  r  first-last ..." ; check contiguity and balance
  rows=$(sed -n '/^ranks:/,/^predicted time/p' <<<"$out" | awk '$1 ~ /^[0-9]+$/ {print $2}')
  [ "$(wc -l <<<"$rows")" -eq "$p" ] && ok || bad "P=$p: expected $p rank rows"
  next=0 min=99 max=0
  while read -r range; do
    first=${range%-*} last=${range#*-}
    [ "$first" -eq "$next" ] && ok || bad "P=$p: block range $range not contiguous"
    n=$((last - first + 1)); next=$((last + 1))
    [ $n -lt $min ] && min=$n; [ $n -gt $max ] && max=$n
  done <<<"$rows"
  [ "$next" -eq 4 ] && ok || bad "P=$p: blocks not all covered"
  [ $((max - min)) -le 1 ] && ok || bad "P=$p: split unbalanced ($min..$max)"
  # the predicted time: a row per rank, and the job is the sum of its stages
  cost_rows=$(sed -n '/^predicted time/,/^predicted stages/p' <<<"$out" | awk '$1 == "rank"')
  [ "$(wc -l <<<"$cost_rows")" -eq "$p" ] && ok || bad "P=$p: expected $p predicted-time rows"
  secs=$(grep '^predicted seconds (for scripts): ' <<<"$out")
  awk '{for (i = 1; i < NF; i++) v[$i] = $(i + 1)}
       END {s = v["load"] + v["calibrate"] + v["quantize"] + v["write"]
            exit !(v["job"] > 0 && (s - v["job"]) ^ 2 < 1e-6 * v["job"] ^ 2)}' <<<"$secs" &&
    ok || bad "P=$p: predicted job is not the sum of its stages: $secs"
  # the job's 2 windows keep at most 2 pipeline stages busy: from P = 3 on
  # the dry run says which ranks wait
  n_calib=$(grep -c '^idle ranks (calibration): ' <<<"$out")
  [ "$n_calib" -eq $((p > 2)) ] && ok || bad "P=$p: $n_calib calibration idle lines: $out"
  [ "$p" -le 2 ] || expect_out "idle ranks (calibration): $(seq -s ' ' 0 $((p - 1))) hold $p pipeline stages but get at most 2 calibration windows: at most 2 of the $p stages work at a time" "P=$p"
done

[ "$test_common" = 1 ] || { finish; exit; }

# more ranks than blocks: works and names the idle ranks, those whose row
# in the rank table has no blocks ("-"), and the 4 stages the 2 windows
# cannot keep busy (the ranks with blocks)
run "$mpiexec" -n 6 "$bin" --dry-run "$job"
expect_rc 0 "P=6"
rows=$(sed -n '/^ranks:/,/^predicted time/p' <<<"$out" | awk '$1 ~ /^[0-9]+$/')
no_block=$(awk '$2 == "-" {printf " %s", $1}' <<<"$rows")
with_block=$(awk '$2 != "-" {printf " %s", $1}' <<<"$rows")
[ "$(wc -w <<<"$no_block")" -eq 2 ] && ok || bad "P=6: expected 2 ranks without a block: '$no_block'"
expect_out "idle ranks (no decoder block):$no_block — 6 ranks for 4 blocks: they wait through load and calibrate and work only in the quantize stage" "P=6"
expect_out "idle ranks (calibration):$with_block hold 4 pipeline stages but get at most 2 calibration windows" "P=6"
[ "$(grep -c '^idle ranks' <<<"$out")" -eq 2 ] && ok || bad "P=6: expected two idle lines: $out"

# one window for two stages: they cannot overlap, and the dry run says so
run "$mpiexec" -n 2 "$bin" --dry-run "$job" --set calibration.n_samples=1
expect_rc 0 "P=2, one window"
expect_out "idle ranks (calibration): 0 1 hold 2 pipeline stages but get at most 1 calibration window: one stage works at a time (the stages cannot overlap), the others wait; [calibration] n_samples >= 2 keeps every stage busy" "P=2, one window"
[ "$(grep -c '^idle ranks' <<<"$out")" -eq 1 ] && ok || bad "P=2, one window: expected one idle line"

# one rank fails (its own bad config), the others end too, with its message
cat >"$tmp/wrap.sh" <<WRAP
#!/usr/bin/env bash
if [ "\$OMPI_COMM_WORLD_RANK" = 2 ]; then exec "$bin" --dry-run --set output.zstd_level=0 "$job"; fi
exec "$bin" --dry-run "$job"
WRAP
chmod +x "$tmp/wrap.sh"
# (timeout: a guard against a hang, far above the slowest run: three ASan
# processes whose exit-time leak checks take a minute each on a loaded machine)
run timeout 900 "$mpiexec" -n 3 "$tmp/wrap.sh"
expect_rc 3 "rank 2 fails"
expect_err "raana-mpi: error: rank 2: --set output.zstd_level=0" "rank 2 fails"
expect_one_error_line "rank 2 fails"
finish

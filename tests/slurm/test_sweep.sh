#!/usr/bin/env bash
# test_sweep.sh — a bit-budget sweep under a real single-node Slurm
# (tests/slurm/cluster.sh) from one command, slurm/submit-sweep.sh, on the
# fixture job with three budgets: it prints the three job ids; calibration
# runs once and every array task reuses it (its log says so); each task's
# container has its budget as target_avg_bits, and the 2.5-bit one equals
# the container mpirun makes with its own calibration (outside /provenance);
# the dependent evaluation writes one row per budget with both perplexities
# (the original's the same in every row) and the KL divergence, smaller at
# 4 bits than at 2.5; analysis/sweep.py's plots and table when analysis/ is
# there. With [quantize] ldlq there is no calibrate job: the task calibrates
# (LDLQ needs the grams) and its container equals mpirun's.
#
# The evaluation needs raana-eval --container ... --json (branch eval) and
# the plots analysis/sweep.py (branch analysis). With a raana-eval without
# --json, the test instead checks that the evaluation job fails and its log
# names the unknown option, so the full checks start by themselves once
# those branches are merged.
# Usage: test_sweep.sh RAANA_MPI RAANA_EVAL PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 eval_bin=$2 plugin_dir=$3 src=$4 mpiexec=$5
. "$src/tests/cli/lib.sh"
. "$src/tests/slurm/cluster.sh"
cluster_test_env # MPI settings, $tmp, the EXIT trap
py=/usr/bin/python3
job=$src/jobs/kjv-tiny.ini
dir=$tmp/sweep
analysis=${RAANA_ANALYSIS_DIR:-$src/analysis}
attr() { # attr FILE.h5 GROUP NAME: a number, as %g
  HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import h5py,sys; print("%g" % h5py.File(sys.argv[1])[sys.argv[2]].attrs[sys.argv[3]])' "$@"
}
wait_gone() { cluster_wait_gone "$1" 20; }
job_state() { scontrol show job "$1" | grep -oE 'JobState=[A-Z_]+' | sort -u | cut -d= -f2 | tr '\n' ' '; }

# the reference: 2.5 bits, calibrated in its own run
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$tmp/ref.h5" --set quantize.avg_bits=2.5
expect_rc 0 "mpirun reference"

if ! cluster_start "$tmp/slurm"; then
  bad "could not start Slurm (see above)"
  finish
  exit
fi
ok

has_container_eval=0
"$eval_bin" --help 2>/dev/null | grep -q -- '--json' && has_container_eval=1
run env RAANA_MPI="$mpi_bin" RAANA_EVAL="$eval_bin" RAANA_TEXT="$src/tests/data/kjv-tiny/heldout.txt" \
  RAANA_EVAL_ARGS="--seq-len 256 --max-windows 4" RAANA_PLUGIN_DIR="$plugin_dir" \
  RAANA_ANALYSIS_DIR="$analysis" \
  RAANA_SBATCH_ARGS="--mem-per-cpu=200M --time=00:30:00" RAANA_CPU_BIND=none \
  "$src/slurm/submit-sweep.sh" "$job" "2.5 3 4" "$dir"
expect_rc 0 "submit-sweep.sh"
cal=$(sed -n 's/^calibrate: job \([0-9]*\) .*/\1/p' <<<"$out")
array=$(sed -n 's/^sweep: array job \([0-9]*\), 3 tasks .*/\1/p' <<<"$out")
ev=$(sed -n 's/^evaluate: job \([0-9]*\) .*/\1/p' <<<"$out")
[ -n "$cal" ] && [ -n "$array" ] && [ -n "$ev" ] && ok || bad "submit-sweep.sh: job ids: $out"
for j in $cal $array $ev; do wait_gone "$j"; done

[ "$(job_state "$cal")" = "COMPLETED " ] && ok || bad "calibrate job: $(job_state "$cal")"
[ -f "$dir/calibration.h5.calibration.json" ] && ok || bad "no calibration statistics"
[ "$(job_state "$array")" = "COMPLETED " ] && ok || bad "array job: $(job_state "$array")"
bits=(2.5 3 4)
for i in 0 1 2; do
  c=$dir/sweep_${array}_$i.h5
  log=$dir/sweep_${array}_$i.log
  if [ -f "$c" ]; then
    [ "$(attr "$c" report target_avg_bits)" = "${bits[i]}" ] && ok ||
      bad "task $i: target_avg_bits $(attr "$c" report target_avg_bits), expected ${bits[i]}"
  else
    bad "task $i: no container $c"
  fi
  grep -qF "calibrate: reused from $dir/calibration.h5.calibration.json" "$log" && ok ||
    bad "task $i: calibration not reused: $(tail -3 "$log")"
  grep -q "calibrate (forward)" "$log" && bad "task $i calibrated again" || ok
done
HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/ref.h5" \
  "$dir/sweep_${array}_0.h5" --ignore config.ini >/dev/null && ok ||
  bad "the 2.5-bit container differs from mpirun's"

manifest=$dir/sweep_$array.tsv
summary=$dir/sweep_$array.summary.tsv
if [ "$has_container_eval" = 1 ]; then
  [ "$(job_state "$ev")" = "COMPLETED " ] && ok || bad "evaluate job: $(job_state "$ev")"
  run "$py" - "$summary" <<'PY'
import math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, rows = rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
assert [r["avg_bits"] for r in rows] == ["2.5", "3", "4"], rows
for r in rows:
    for k in ("ppl_original", "ppl_quantized", "ppl_ratio", "kl_mean"):
        assert math.isfinite(float(r[k])) and float(r[k]) >= 0, (k, r)
    assert abs(float(r["ppl_quantized"]) / float(r["ppl_original"]) - float(r["ppl_ratio"])) < 1e-4, r
assert len({r["ppl_original"] for r in rows}) == 1, "the original's perplexity differs"
assert float(rows[2]["kl_mean"]) < float(rows[0]["kl_mean"]), "KL at 4 bits not below 2.5 bits"
print("ok")
PY
  expect_rc 0 "summary table: $out"
  if [ -f "$analysis/sweep.py" ]; then
    [ -s "$dir/sweep_$array.analysis/sweep_ppl_ratio.png" ] && ok || bad "no perplexity plot"
    [ -s "$dir/sweep_$array.analysis/sweep_kl.png" ] && ok || bad "no KL plot"
    [ "$(grep -c '^| AllocateBits |' "$dir/sweep_$array.analysis/summary.md")" = 3 ] && ok ||
      bad "analysis table: not 3 rows"
  fi
else
  echo "test_sweep.sh: raana-eval has no --json yet (branch eval): checking that the" \
    "evaluation job fails cleanly instead" >&2
  [ "$(job_state "$ev")" = "FAILED " ] && ok || bad "evaluate job: $(job_state "$ev")"
  grep -qE "raana-eval: error: unknown (option|argument) '--json'" "$dir"/evaluate-"$ev".log && ok ||
    bad "evaluate log does not name --json: $(tail -3 "$dir"/evaluate-"$ev".log)"
  [ ! -e "$summary" ] && ok || bad "a summary without evaluations"
fi
[ -f "$manifest" ] && [ "$(wc -l <"$manifest")" = 4 ] && ok || bad "manifest $manifest"

# with [quantize] ldlq the statistics cannot stand in for the grams: no
# calibrate job, the task calibrates, and its container is mpirun's
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$tmp/ref-ldlq.h5" \
  --set quantize.avg_bits=2.5 --set quantize.ldlq=true
expect_rc 0 "mpirun reference with ldlq"
run env RAANA_MPI="$mpi_bin" RAANA_EVAL="$eval_bin" RAANA_TEXT="$src/tests/data/kjv-tiny/heldout.txt" \
  RAANA_EVAL_ARGS="--seq-len 256 --max-windows 4" RAANA_PLUGIN_DIR="$plugin_dir" \
  RAANA_ANALYSIS_DIR="$analysis" \
  RAANA_SBATCH_ARGS="--mem-per-cpu=200M --time=00:30:00" RAANA_CPU_BIND=none \
  "$src/slurm/submit-sweep.sh" "$job" "2.5" "$dir-ldlq" --set quantize.ldlq=true
expect_rc 0 "submit-sweep.sh with ldlq"
expect_out "calibrate: in every task ([quantize] ldlq needs the layer inputs' grams)" "sweep with ldlq"
array=$(sed -n 's/^sweep: array job \([0-9]*\), 1 tasks .*/\1/p' <<<"$out")
ev=$(sed -n 's/^evaluate: job \([0-9]*\) .*/\1/p' <<<"$out")
[ -n "$array" ] && [ -n "$ev" ] && ! grep -q "^calibrate: job" <<<"$out" && ok ||
  bad "submit-sweep.sh with ldlq: job ids: $out"
for j in $array $ev; do wait_gone "$j"; done
[ "$(job_state "$array")" = "COMPLETED " ] && ok || bad "ldlq array job: $(job_state "$array")"
grep -q "calibrate (forward)" "$dir-ldlq/sweep_${array}_0.log" && ok ||
  bad "ldlq task did not calibrate: $(tail -3 "$dir-ldlq/sweep_${array}_0.log")"
HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/ref-ldlq.h5" \
  "$dir-ldlq/sweep_${array}_0.h5" --ignore config.ini >/dev/null && ok ||
  bad "the ldlq sweep's container differs from mpirun's"

cluster_stop && ok || bad "daemons still running after cluster_stop"
finish

#!/bin/bash
# submit-sweep.sh — a bit-budget sweep on Slurm as one command: calibrate once
# (calibrate.sbatch, raana-mpi --calibrate-only; with [quantize] ldlq every
# task calibrates instead: LDLQ needs the grams), then a job array over the
# avg_bits values (and seeds) reusing that calibration (sweep.sbatch, one
# container OUTDIR/sweep_<array>_<task>.h5 per task), then the evaluation of
# every container with a table and plots (evaluate.sbatch), each job waiting
# for the previous one (--dependency=afterok; if one fails, the jobs after it
# are cancelled: --kill-on-invalid-dep=yes). Prints the job ids.
#   slurm/submit-sweep.sh JOB.ini "2.5 3 4" OUTDIR [--set SECTION.KEY=VALUE ...]
# Environment:
#   RAANA_TEXT         text for the evaluation (required), e.g. a held-out split
#   RAANA_SEEDS        seeds, e.g. "1 2 3" (default: the config's seed only)
#   RAANA_MODEL        the original model for the evaluation (default: the config's)
#   RAANA_SBATCH_ARGS  extra sbatch options for every job, e.g. "--partition=p --account=a"
#   RAANA_MPI, RAANA_EVAL, RAANA_EVAL_ARGS, RAANA_CPU_BIND: as in the .sbatch files
# The job's output.path is replaced by files in OUTDIR.
set -euo pipefail
usage='usage: slurm/submit-sweep.sh CONFIG.ini "AVG_BITS..." OUTDIR [--set SECTION.KEY=VALUE ...]'
[ $# -ge 3 ] || { echo "submit-sweep.sh: $usage" >&2; exit 2; }
config=$(realpath "$1") bits=$2
mkdir -p "$3"
outdir=$(realpath "$3")
shift 3
: "${RAANA_TEXT:?submit-sweep.sh: set RAANA_TEXT to the evaluation text file}"
text=$(realpath "$RAANA_TEXT")
export RAANA_SLURM_DIR
RAANA_SLURM_DIR=$(cd "$(dirname "$0")" && pwd)
read -r -a bit_list <<<"$bits"
read -r -a seed_list <<<"${RAANA_SEEDS:-}"
[ ${#bit_list[@]} -gt 0 ] || { echo "submit-sweep.sh: no avg_bits values" >&2; exit 2; }
n=$((${#bit_list[@]} * (${#seed_list[@]} > 0 ? ${#seed_list[@]} : 1)))
model=${RAANA_MODEL:-$("${RAANA_MPI:-raana-mpi}" --print-config "$config" "$@" |
  awk '/^\[/ { s = $0 } s == "[model]" && $1 == "path" { print $3 }')}
# the config is checked once here, not n times in the queue
"${RAANA_MPI:-raana-mpi}" --dry-run "$config" "$@" >/dev/null
read -r -a extra <<<"${RAANA_SBATCH_ARGS:-}"

# [quantize] ldlq needs the calibration inputs' grams, which the statistics
# file does not hold: then every task calibrates and there is no calibrate job
ldlq=$("${RAANA_MPI:-raana-mpi}" --print-config "$config" "$@" |
  awk '/^\[/ { s = $0 } s == "[quantize]" && $1 == "ldlq" { print $3 }')
cal="" stats=none after=()
if [ "$ldlq" != true ]; then
  cal=$(sbatch --parsable "${extra[@]}" --chdir="$outdir" --output="$outdir/calibrate-%j.log" \
    "$RAANA_SLURM_DIR/calibrate.sbatch" "$config" "$@" --set "output.path=$outdir/calibration.h5")
  stats=$outdir/calibration.h5.calibration.json
  after=(--dependency="afterok:$cal" --kill-on-invalid-dep=yes)
fi
array=$(sbatch --parsable "${extra[@]}" "${after[@]}" \
  --array="0-$((n - 1))" --chdir="$outdir" --output="$outdir/sweep_%A_%a.log" \
  "$RAANA_SLURM_DIR/sweep.sbatch" "$config" "$stats" "$outdir" "$bits" "${RAANA_SEEDS:-}" "$@")
manifest=$outdir/sweep_$array.tsv
{
  printf 'task\tavg_bits\tseed\tcontainer\n'
  for ((i = 0; i < n; i++)); do
    printf '%d\t%s\t%s\t%s\n' "$i" "${bit_list[i % ${#bit_list[@]}]}" \
      "${seed_list[i / ${#bit_list[@]}]:-config}" "$outdir/sweep_${array}_$i.h5"
  done
} >"$manifest"
eval_job=$(sbatch --parsable "${extra[@]}" --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --chdir="$outdir" --output="$outdir/evaluate-%j.log" "$RAANA_SLURM_DIR/evaluate.sbatch" \
  "$model" "$text" "$manifest")
if [ -n "$cal" ]; then
  echo "calibrate: job $cal -> $stats"
else
  echo "calibrate: in every task ([quantize] ldlq needs the layer inputs' grams)"
fi
echo "sweep: array job $array, $n tasks (avg_bits $bits${RAANA_SEEDS:+; seeds $RAANA_SEEDS})" \
  "-> $outdir/sweep_${array}_<task>.h5"
echo "evaluate: job $eval_job -> ${manifest%.tsv}.summary.tsv and ${manifest%.tsv}.analysis/"
echo "follow: tail -f $outdir/*.log; squeue -j ${cal:+$cal,}$array,$eval_job"

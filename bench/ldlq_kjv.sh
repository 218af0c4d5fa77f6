#!/bin/bash
# ldlq_kjv.sh — issue 12: raana-mpi with and without [quantize] ldlq on the
# fixture job (jobs/kjv-tiny.ini: its calibration, 2 windows of 256 tokens),
# held-out perplexity ratio to the unquantized 31.921801 with raana-eval
# (heldout.txt, N = 256), seeds 0-2, at the budgets given (default 2.5 3.3).
# With KL=1 also the mean KL divergence to the unquantized model; UNIFORM=1
# gives every layer avg_bits; SETS="section.key=value ..." more settings.
# Usage: bench/ldlq_kjv.sh BUILD_DIR WORK_DIR [avg_bits ...]
# Prints one line per (budget, seed, ldlq) and a median table.
set -euo pipefail
build=$(realpath "$1") work=$2
shift 2
budgets=("${@:-2.5 3.3}")
[ $# -gt 0 ] || budgets=(2.5 3.3)
src=$(cd "$(dirname "$0")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export HDF5_PLUGIN_PATH=$build/hdf5-plugin
mkdir -p "$work"
results=$work/results.txt
touch "$results"
for a in "${budgets[@]}"; do
    for seed in ${SEEDS:-0 1 2}; do
        for ldlq in false true; do
            key="A=$a seed=$seed ldlq=$ldlq"
            grep -q "^$key " "$results" && continue
            out=$work/a${a}_s${seed}_$ldlq.h5
            extra=()
            [ "${UNIFORM:-0}" = 1 ] && extra=(--set "quantize.bits=$a")
            for kv in ${SETS:-}; do extra+=(--set "$kv"); done
            "$build/raana-mpi" "$src/jobs/kjv-tiny.ini" --set "output.path=$out" \
                --set "quantize.seed=$seed" --set "quantize.avg_bits=$a" \
                --set "quantize.ldlq=$ldlq" "${extra[@]}" >/dev/null 2>&1
            eval_args=(--container "$out" --text "$src/tests/data/kjv-tiny/heldout.txt"
                --seq-len 256 --json --quiet)
            [ "${KL:-0}" = 1 ] && eval_args+=(--model "$src/tests/data/kjv-tiny")
            line=$("$build/raana-eval" "${eval_args[@]}" | python3 -c '
import json, sys
d = json.load(sys.stdin)
q = d.get("quantized", d)
kl = d.get("kl")
kl = kl.get("mean") if isinstance(kl, dict) else kl
ratio = q["perplexity"] / 31.921801
print(f"ratio {ratio:.4f}" + (f" kl {kl:.5f}" if kl is not None else ""))')
            eff=$("$build/raana-inspect" --json "$out" | python3 -c '
import json, sys
eff = json.load(sys.stdin)["report"]["effective_bits_quantized"]
print(f"{eff:.3f}")')
            echo "$key $line eff $eff" | tee -a "$results"
        done
    done
done
python3 - "$results" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    key = (f[0], f[2])
    rows[key].append(float(f[4]))
print("| budget | ldlq | ratios | median |")
print("|---|---|---|---|")
for (a, l), r in sorted(rows.items()):
    print(f"| {a} | {l} | {', '.join(f'{x:.4f}' for x in r)} | {statistics.median(r):.4f} |")
EOF

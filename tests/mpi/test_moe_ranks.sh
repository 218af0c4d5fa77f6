#!/usr/bin/env bash
# test_moe_ranks.sh — mixtures of experts end to end on both MoE fixtures
# (tests/data/mixtral-tiny-random, qwen3-moe-tiny-random; reference.json from
# an independent PyTorch implementation), calibrating on the 96-token window:
#   - raana-eval of the checkpoint: perplexity exp(reference loss) within 2e-3;
#   - 3 bits, P = 1..4: every layer's calibration norms (router, each expert
#     over its routed tokens) within 1e-4 of the reference, routers kept in
#     full precision, tokens per expert in the report equal to the reference
#     (tests/py/check_moe_stats.py); containers byte-identical to P = 1
#     outside /provenance; the numpy reader rebuilds every expert
#     (tests/py/check_container.py); raana-inspect lists experts;
#   - 8 bits: the quantized qwen3-moe within 0.5% of the unquantized
#     perplexity on the window (mixtral: docs/MOE.md, measured, within 1%);
#   - a checkpoint missing one expert's tensor: one error naming the tensor.
# Usage: test_moe_ranks.sh RAANA_MPI RAANA_EVAL RAANA_INSPECT PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 eval_bin=$2 inspect_bin=$3 plugin_dir=$4 src=$5 mpiexec=$6
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
export HDF5_PLUGIN_PATH=$plugin_dir
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

write_job() { # fixture_dir avg_bits output
  cat >"$tmp/job.ini" <<INI
[model]
path = $1
[calibration]
source = text
text_file = $1/window.txt
n_samples = 1
seq_len = 96
[quantize]
avg_bits = $2
bits = 1, 2, 3, 4, 5, 6, 8
seed = 1234
[output]
path = $3
overwrite = true
INI
}

# field of the JSON that raana-eval --json printed
json_field() { "$py" -c "import json,sys; d=json.loads(sys.argv[1]); print(eval('d' + sys.argv[2]))" "$1" "$2"; }

for name in mixtral-tiny-random qwen3-moe-tiny-random; do
  fixture=$src/tests/data/$name
  ref_ppl=$("$py" -c "import json,math; print(math.exp(json.load(open('$fixture/reference.json'))['loss']))")
  run "$eval_bin" --model "$fixture" --text "$fixture/window.txt" --seq-len 96 --json --quiet
  expect_rc 0 "$name: raana-eval of the checkpoint"
  ppl=$(json_field "$out" "['original']['perplexity']")
  "$py" -c "import sys; sys.exit(abs($ppl / $ref_ppl - 1) > 2e-3)" && ok ||
    bad "$name: perplexity $ppl, reference $ref_ppl"

  write_job "$fixture" 3 "$tmp/out.h5"
  for p in 1 2 3 4; do
    run "$mpiexec" -n "$p" "$mpi_bin" "$tmp/job.ini"
    expect_rc 0 "$name 3 bits P=$p"
    printf '%s\n%s\n' "$out" "$errout" >"$tmp/report$p.txt"
    "$py" "$src/tests/py/check_moe_stats.py" "$tmp/out.h5" "$fixture" "$tmp/report$p.txt" && ok ||
      bad "$name P=$p: calibration statistics against reference.json"
    mv "$tmp/out.h5" "$tmp/p$p.h5"
  done
  for p in 2 3 4; do
    "$py" "$src/tests/py/compare_containers.py" "$tmp/p1.h5" "$tmp/p$p.h5" && ok ||
      bad "$name: container P=$p differs from P=1"
  done
  "$py" "$src/tests/py/check_container.py" "$tmp/p3.h5" "$inspect_bin" "$fixture" && ok ||
    bad "$name: check_container (numpy rebuild of every expert)"
  run "$inspect_bin" "$tmp/p1.h5"
  expect_rc 0 "$name: raana-inspect"
  expect_out "model.layers.1." "$name: raana-inspect table"

  write_job "$fixture" 8 "$tmp/q8.h5"
  run "$mpiexec" -n 2 "$mpi_bin" "$tmp/job.ini"
  expect_rc 0 "$name 8 bits"
  run "$eval_bin" --model "$fixture" --container "$tmp/q8.h5" --text "$fixture/window.txt" \
    --seq-len 96 --json --quiet
  expect_rc 0 "$name: raana-eval of the 8-bit container"
  ratio=$(json_field "$out" "['ppl_ratio']")
  limit=0.005
  [ "$name" = mixtral-tiny-random ] && limit=0.01
  echo "$name: 8-bit perplexity ratio $ratio (limit $limit)"
  "$py" -c "import sys; sys.exit(abs($ratio - 1) > $limit)" && ok ||
    bad "$name: 8-bit perplexity ratio $ratio"
done

# a checkpoint missing one expert's tensor (sharded: the index leaves it out)
fixture=$src/tests/data/mixtral-tiny-random
mkdir "$tmp/missing"
cp "$fixture"/config.json "$fixture"/tokenizer* "$fixture"/special_tokens_map.json "$tmp/missing/"
ln -s "$fixture/model.safetensors" "$tmp/missing/model-00001-of-00001.safetensors"
"$py" - "$fixture/model.safetensors" "$tmp/missing/model.safetensors.index.json" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    names = [k for k in json.loads(f.read(n)) if k != "__metadata__"]
gone = "model.layers.1.block_sparse_moe.experts.2.w3.weight"
names.remove(gone)
json.dump({"weight_map": {k: "model-00001-of-00001.safetensors" for k in names}},
          open(sys.argv[2], "w"))
PY
write_job "$tmp/missing" 3 "$tmp/missing.h5"
run "$mpiexec" -n 2 "$mpi_bin" "$tmp/job.ini"
expect_rc 4 "checkpoint missing an expert tensor"
expect_err "tensor 'model.layers.1.block_sparse_moe.experts.2.w3.weight' is missing" \
  "checkpoint missing an expert tensor"
[ ! -e "$tmp/missing.h5" ] && ok || bad "no output left for the refused checkpoint"
finish

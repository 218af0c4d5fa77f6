#!/usr/bin/env bash
# test_calibrate_ranks.sh — the MPI pipeline on the fixture for P = 1..4:
# raana-eval's held-out perplexity against reference.json (and identical for
# every P); raana-mpi --calibrate-only on the reference's calibration text
# (one window of 362 tokens) against every layer's ||X||, ||Y||, ||dL/dY|| in
# reference.json; bad inputs: a text shorter than one window, NaN in a
# weight held by rank 1. Usage: test_calibrate_ranks.sh RAANA_MPI RAANA_EVAL SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh)
set -u
mpi_bin=$1 eval_bin=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(ref_dir "$tmp")
# same_as_p1 FILE NAME what: FILE is byte-identical to P = 1's NAME (P = 1 stores it)
same_as_p1() {
  [ "$p" = 1 ] && cp "$1" "$ref/$2"
  has_ref "$ref/$2" "$3" && { cmp -s "$1" "$ref/$2" && ok || bad "$3 differs from P=1"; }
}

# perplexity: reference 31.9218 (fp32 PyTorch), 47,940 scored tokens
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$eval_bin" --model "$fixture" --text "$fixture/heldout.txt" --seq-len 256 --quiet
  expect_rc 0 "eval P=$p"; expect_out "scored tokens: 47940" "eval P=$p"
  printf '%s\n' "$out" >"$tmp/eval.txt"
  "$py" "$src/tests/py/check_eval.py" "$fixture/reference.json" "$tmp/eval.txt" >/dev/null &&
    ok || bad "eval P=$p: perplexity off: $out"
  same_as_p1 "$tmp/eval.txt" eval.txt "eval P=$p"
done

# calibration: the reference's text as one window of 362 tokens
"$py" - "$fixture/reference.json" "$tmp/calib.txt" <<'PY'
import json, sys
cc = json.load(open(sys.argv[1]))["calibration_check"]
open(sys.argv[2], "w").write(cc["text"] * cc["repeat"])
PY
cat >"$tmp/calib.ini" <<INI
[model]
path = $fixture
[calibration]
source = text
text_file = calib.txt
n_samples = 1
seq_len = 362
[output]
path = out.h5
INI
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" --calibrate-only "$tmp/calib.ini"
  expect_rc 0 "calibrate P=$p"; expect_out "1 windows of 362 tokens" "calibrate P=$p"
  "$py" "$src/tests/py/check_calibration.py" "$fixture/reference.json" \
    "$tmp/out.h5.calibration.json" && ok || bad "calibrate P=$p: statistics differ from reference.json"
  same_as_p1 "$tmp/out.h5.calibration.json" calibration.json "calibration output P=$p"
done

# reduce + allocate: the same allocation for every P, optimal, coefficients
# from independently recomputed weight norms
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" --allocate-only --set output.path="$tmp/al.h5" \
    --set quantize.avg_bits=2.5 "$src/jobs/kjv-tiny.ini"
  expect_rc 0 "allocate P=$p"; expect_out "allocation: target 2.5 bits" "allocate P=$p"
  "$py" "$src/tests/py/check_allocation.py" "$fixture" "$tmp/al.h5.allocation.json" && ok ||
    bad "allocation check P=$p"
  same_as_p1 "$tmp/al.h5.allocation.json" allocation.json "allocation P=$p"
done
[ "$test_common" = 1 ] || { finish; exit; }

# the calibrated error model (AllocateBits' f(b) measured on the quantizer),
# with sub-bit candidates: optimal for its table, the table checked, and the
# same for 1 and 3 ranks
for p in 1 3; do
  run "$mpiexec" -n "$p" "$mpi_bin" --allocate-only --set output.path="$tmp/cal$p.h5" \
    --set quantize.avg_bits=2.5 --set quantize.error_model=calibrated \
    --set quantize.bits=0.5,0.75,1,2,3,4,8 "$src/jobs/kjv-tiny.ini"
  expect_rc 0 "allocate, calibrated error model, P=$p"
  expect_out "calibrated error model" "allocate, calibrated error model, P=$p"
  "$py" "$src/tests/py/check_allocation.py" "$fixture" "$tmp/cal$p.h5.allocation.json" && ok ||
    bad "allocation check, calibrated error model, P=$p"
done
cmp -s "$tmp/cal1.h5.allocation.json" "$tmp/cal3.h5.allocation.json" && ok ||
  bad "calibrated error model: P=3's allocation differs from P=1's"

# a text shorter than one window
printf 'In the beginning God created the heaven and the earth.\n' >"$tmp/short.txt"
run "$mpiexec" -n 2 "$mpi_bin" --calibrate-only --set calibration.text_file="$tmp/short.txt" "$src/jobs/kjv-tiny.ini"
expect_rc 4 "short text"; expect_err "short.txt: the calibration text has" "short text"
expect_err "fewer than one window of 256 (seq_len)" "short text"; expect_one_error_line "short text"

# NaN in a weight that rank 1 of 2 holds (blocks 2-3)
mkdir -p "$tmp/nan"
cp "$fixture"/*.json "$tmp/nan/"
cp "$fixture/model.safetensors" "$tmp/nan/"
"$py" - "$tmp/nan/model.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
blob = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", blob[:8])[0]
info = json.loads(blob[8:8 + n])["model.layers.3.mlp.up_proj.weight"]
at = 8 + n + info["data_offsets"][0] + 2 * 10
blob[at:at + 2] = b"\xc0\x7f"  # BF16 NaN at flat index 10
open(path, "wb").write(blob)
PY
run "$mpiexec" -n 2 "$mpi_bin" --calibrate-only --set model.path="$tmp/nan" --set output.path="$tmp/nan.h5" "$src/jobs/kjv-tiny.ini"
expect_rc 9 "NaN weight"; expect_err "rank 1: $tmp/nan/model.safetensors: tensor 'model.layers.3.mlp.up_proj.weight' holds NaN at flat index 10" "NaN weight"
[ ! -e "$tmp/nan.h5.calibration.json" ] && ok || bad "NaN weight: output left behind"
run "$eval_bin" --model "$fixture" --text "$tmp/short.txt" --seq-len 256
expect_rc 4 "eval short text"; expect_err "short.txt: the text has" "eval short text"
finish

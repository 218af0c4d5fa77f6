#!/usr/bin/env bash
# test_eval.sh — raana-eval's sides, windows and command line:
#  - the original against itself (--model X --compare X): KL exactly 0,
#    top-1 agreement 1, the two perplexities equal; the JSON output
#    bit-identical for P = 1..4; the text output's lines (the contract);
#  - --stride/--max-windows arithmetic of windows and scored tokens;
#  - --opt value and --opt=value in any order;
#  - bad inputs, each one error line and its exit code: binary text, a NUL
#    byte, a text shorter than one window, --model not the container's
#    checkpoint (one weight byte changed), no side, both quantized sides,
#    an unknown option, a missing value, a bad number, a missing text.
# Usage: test_eval.sh RAANA_EVAL RAANA_MPI SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh; the
# checks for one P first, then the ones that do not depend on P)
set -u
eval_bin=$1 mpi_bin=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
fixture=$src/tests/data/kjv-tiny
text=$fixture/heldout.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

eval_error() { # eval_error RC TEXT what: exit code, the message, one error line
  expect_rc "$1" "$3"
  expect_err "$2" "$3"
  local n
  n=$(grep -c '^raana-eval: error:' <<<"$errout")
  [ "$n" -eq 1 ] && ok || bad "$3: $n error lines: $errout"
  [ -z "$out" ] && ok || bad "$3: printed a result: $out"
}
json_get() { # json_get JSON EXPR: EXPR in python over the object j
  "$py" -c "import json,sys; j=json.loads(sys.argv[1]); print($2)" "$1"
}
ref=$(ref_dir "$tmp")
same_as_p1() { # same_as_p1 NAME what: $out is P = 1's output NAME (P = 1 stores it)
  [ "$p" = 1 ] && printf '%s\n' "$out" >"$ref/$1"
  has_ref "$ref/$1" "$2" &&
    { [ "$out" = "$(cat "$ref/$1")" ] && ok || bad "$2 differs from P=1: $out"; }
}

# the original against itself, for each P: KL 0, agreement 1, output identical to P = 1's
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$eval_bin" --model "$fixture" --compare "$fixture" --text "$text" \
    --seq-len 256 --max-windows 3 --json --quiet
  expect_rc 0 "self P=$p"
  same_as_p1 self.json "self P=$p"
  [ "$(json_get "$out" 'j["kl"]["max"] < 1e-9 and j["kl"]["mean"] < 1e-9')" = True ] && ok ||
    bad "self P=$p: KL not 0: $out"
  [ "$(json_get "$out" 'j["top1_agreement"] == 1 and j["ppl_ratio"] == 1')" = True ] && ok ||
    bad "self P=$p: agreement or ratio not 1: $out"
  [ "$(json_get "$out" 'j["original"] == j["quantized"] and j["scored_tokens"] == 3 * 255')" = True ] &&
    ok || bad "self P=$p: sides differ: $out"
done

# --model not the checkpoint the container was made from: one weight byte
# changed. The container: made by P = 1's entry, which leaves it in the
# reference for the others (the same bytes whoever makes it)
if [ -z "${RAANA_TEST_REF:-}" ] || [ "$test_ranks" = 1 ]; then
  run "$mpiexec" -n 2 "$mpi_bin" --set output.path="$tmp/q.h5" --set calibration.n_samples=1 \
    --set calibration.seq_len=64 "$src/jobs/kjv-tiny.ini"
  expect_rc 0 "container for the fingerprint check"
  cp "$tmp/q.h5" "$ref/q.h5"
elif has_ref "$ref/q.h5" "container for the fingerprint check"; then
  cp "$ref/q.h5" "$tmp/q.h5"
fi
mkdir "$tmp/other"
cp "$fixture"/*.json "$fixture/model.safetensors" "$tmp/other/"
"$py" - "$tmp/other/model.safetensors" <<'PY'
import sys
path = sys.argv[1]
blob = bytearray(open(path, "rb").read())
blob[len(blob) - 100] ^= 1  # the low mantissa bit of one BF16 weight of model.norm
open(path, "wb").write(blob)
PY
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$eval_bin" --model "$tmp/other" --container "$tmp/q.h5" --text "$text" --seq-len 64
  eval_error 4 "is not the checkpoint $tmp/q.h5 was made from" "other checkpoint P=$p"
  expect_err "--model $tmp/other" "other checkpoint P=$p"
  # the container's own checkpoint: accepted, and the same numbers for every P
  run "$mpiexec" -n "$p" "$eval_bin" --model "$fixture" --container "$tmp/q.h5" --text "$text" \
    --seq-len 64 --max-windows 4 --json --quiet
  expect_rc 0 "container P=$p"
  same_as_p1 container.json "container P=$p"
  [ "$(json_get "$out" '0 < j["kl"]["mean"] < j["kl"]["max"] and 0 < j["top1_agreement"] < 1')" = True ] &&
    ok || bad "container P=$p: KL or agreement out of range: $out"
done
[ "$test_common" = 1 ] || { finish; exit; }

# the container alone: its own tokenizer, the same quantized side as with --model
has_ref "$ref/container.json" "container alone" && first=$(cat "$ref/container.json") || first="{}"
run "$eval_bin" --container "$tmp/q.h5" --text "$text" --seq-len 64 --max-windows 4 --json --quiet
expect_rc 0 "container alone"
[ "$(json_get "$out" 'j["quantized"]')" = "$(json_get "$first" 'j.get("quantized")')" ] && ok ||
  bad "container alone: $out differs from $first"

# text output, the contract's lines
run "$eval_bin" --quiet --max-windows=2 --compare="$fixture" --text "$text" --model "$fixture" --seq-len=128
expect_rc 0 "text output"
expect_out "windows: 2 of 128 tokens (stride 128), scored tokens: 254" "text output"
expect_out "KL divergence: mean 0.000000, p99 0.000000, max 0.000000" "text output"
expect_out "top-1 agreement: 1.000000" "text output"
expect_out "ppl ratio: 1.000000 (ln 0.000000)" "text output"
grep -q '^original perplexity: [0-9.]* ± [0-9.]*$' <<<"$out" && ok || bad "original line: $out"
grep -q '^quantized perplexity: [0-9.]* ± [0-9.]*$' <<<"$out" && ok || bad "quantized line: $out"
[ "$(wc -l <<<"$out")" -eq 6 ] && ok || bad "text output is not 6 lines: $out"

# windows: 48141 tokens, seq 256, stride 64: (48141 - 256) / 64 + 1 = 749 windows;
# the first scores 255, each later one 64
run "$eval_bin" --model "$fixture" --text "$text" --seq-len 256 --stride 64 --max-windows 3 --json --quiet
expect_rc 0 "stride"
[ "$(json_get "$out" 'j["windows"], j["scored_tokens"], j["stride"]')" = "3 383 64" ] && ok ||
  bad "stride 64, 3 windows: $out"
run "$eval_bin" --compare "$fixture" --text "$text" --seq-len 16 --stride 600 --json --quiet --max-windows 1000
expect_rc 0 "stride above seq-len"
# windows start at 0, 600, ...: (48141 - 16) / 600 + 1 = 81, each scoring 15
[ "$(json_get "$out" 'j["windows"], j["scored_tokens"], "original" in j')" = "81 1215 False" ] &&
  ok || bad "stride 600: $out"

# bad inputs
printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR' >"$tmp/binary.txt"
run "$eval_bin" --model "$fixture" --text "$tmp/binary.txt" --seq-len 16
eval_error 4 "$tmp/binary.txt: not valid UTF-8 at byte offset 0" "binary text"
printf 'In the beginning\0God created' >"$tmp/nul.txt"
run "$eval_bin" --model "$fixture" --text "$tmp/nul.txt" --seq-len 4
eval_error 4 "$tmp/nul.txt: not text: a NUL byte at byte offset 16" "NUL byte"
printf 'caf\xc3\xa9 ok \xe2\x82 broken' >"$tmp/cut.txt"
run "$mpiexec" -n 2 "$eval_bin" --model "$fixture" --text "$tmp/cut.txt" --seq-len 4
eval_error 4 "$tmp/cut.txt: not valid UTF-8 at byte offset 9" "truncated UTF-8 sequence, 2 ranks"
printf 'In the beginning God created the heaven and the earth.\n' >"$tmp/short.txt"
run "$eval_bin" --model "$fixture" --text "$tmp/short.txt" --seq-len 256
eval_error 4 "short.txt: the text has" "short text"
expect_err "fewer than one window of 256" "short text"
run "$eval_bin" --text "$text"
eval_error 2 "nothing to evaluate: give --model, --container or --compare" "no side"
run "$eval_bin" --model "$fixture"
eval_error 2 "--text is required" "no text"
run "$eval_bin" --model "$fixture" --text "$text" --container a.h5 --compare "$fixture"
eval_error 2 "--container and --compare are both the quantized side" "two quantized sides"
run "$eval_bin" --model "$fixture" --text "$text" --windows 3
eval_error 2 "unknown option '--windows'" "unknown option"
run "$eval_bin" --model "$fixture" --text "$text" --window-count=3
eval_error 2 "unknown option '--window-count' (see --help)" "unknown option with a value"
run "$eval_bin" --model "$fixture" --text "$text" -x
eval_error 2 "unknown option '-x'" "unknown short option"
run "$eval_bin" --text "$text" --model
eval_error 2 "option '--model' needs a value" "missing value"
run "$eval_bin" --model "$fixture" --text "$text" --stride 0
eval_error 2 "--stride 0: expected an integer in 1..1048576" "bad stride"
run "$eval_bin" --model "$fixture" --text "$text" --seq-len=abc
eval_error 2 "--seq-len abc: expected an integer in 2..1048576" "bad seq-len"
run "$eval_bin" --model "$fixture" --text "$text" extra
eval_error 2 "unexpected argument 'extra'" "positional argument"
run "$eval_bin" --model "$tmp/nowhere" --text "$text"
eval_error 4 "$tmp/nowhere/config.json: cannot open" "missing model dir"

finish

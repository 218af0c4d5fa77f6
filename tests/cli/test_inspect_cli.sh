#!/bin/bash
# test_inspect_cli.sh — raana-inspect's command line (getopt_long, the
# shared convention): --opt value and --opt=value, options and CONTAINER in
# any order, the legacy --dequantize LAYER OUT.f32, an unknown option or a
# missing value named with exit 2, and the --help layout.
#
# Usage: test_inspect_cli.sh RAANA_MPI RAANA_INSPECT SOURCE_DIR
set -u
mpi=$1 inspect=$2 src=$3
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_ess_singleton_isolated=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
c=$work/kjv.h5
run "$mpi" "$src/jobs/kjv-tiny.ini" --set output.path="$c"
expect_rc 0 "the fixture job"
layer=model.layers.0.mlp.up_proj

# the same weight from every spelling, in every order
forms=("$c --dequantize $layer --output $work/a.f32"
  "--output=$work/b.f32 --dequantize=$layer $c"
  "--dequantize $layer $work/c.f32 $c"
  "$c --dequantize=$layer $work/d.f32")
for f in "${forms[@]}"; do
  run "$inspect" $f
  expect_rc 0 "raana-inspect $f"
done
for x in b c d; do
  if cmp -s "$work/a.f32" "$work/$x.f32"; then ok; else bad "form $x: another weight"; fi
done
size=$(stat -c %s "$work/a.f32")
if [ "$size" -eq $((4 * 192 * 576)) ]; then ok; else bad "$layer: $size bytes"; fi

run "$inspect" --layers "$c"
first=$out
run "$inspect" "$c" --layers
if [ "$out" = "$first" ] && grep -q "^28 quantized layers$" <<<"$out"; then ok; else bad "--layers order"; fi

run "$inspect" --frobnicate "$c"
expect_rc 2 "unknown option"
expect_err "raana-inspect: error: unknown option '--frobnicate' (see --help)" "unknown option named"
run "$inspect" --frobnicate=3 "$c"
# named without its value, as every tool does (tests/cli/test_convention.sh)
expect_err "raana-inspect: error: unknown option '--frobnicate' (see --help)" "unknown option with a value named"
run "$inspect" "$c" --output
expect_rc 2 "missing value"
expect_err "raana-inspect: error: option '--output' needs a value (see --help)" "missing value named"
run "$inspect" --json --verify "$c"
expect_rc 2 "two modes"
run "$inspect" "$c" --dequantize $layer
expect_rc 2 "--dequantize without an output"
expect_err "--dequantize needs --output OUT.f32" "--dequantize without an output named"
run "$inspect"
expect_rc 2 "no container"
errors=$(grep -c "error:" <<<"$errout")
if [ "$errors" -eq 1 ]; then ok; else bad "no container: $errors error lines"; fi

run "$inspect" --help
expect_rc 0 "--help"
mapfile -t help <<<"$out"
if [ "${help[0]}" = "Usage: raana-inspect [OPTIONS] CONTAINER" ] && [ -z "${help[1]}" ]; then ok; else
  bad "--help starts '${help[0]}' / '${help[1]}'"; fi
opts=$(grep -n '^Options:$' <<<"$out" | cut -d: -f1)
if [ -n "$opts" ] && [ -z "${help[$((opts - 2))]}" ]; then ok; else bad "--help: no 'Options:' after a blank line"; fi
# every option line: two spaces, [-x, ]--name [VALUE], at least two spaces, text
bad_lines=$(tail -n +$((opts + 1)) <<<"$out" | grep -vcE '^  (-[A-Za-z], )?--[a-z-]+( [A-Z][A-Za-z.0-9]*)?  +[^ ]|^ {20,}[^ ]')
if [ "$bad_lines" -eq 0 ]; then ok; else bad "--help: $bad_lines option lines off the layout"; fi

finish

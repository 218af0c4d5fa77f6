#!/usr/bin/env bash
# test_analysis.sh — analysis/layers.py and analysis/sweep.py on a real sweep
# of the fixture (jobs/kjv-tiny.ini at avg_bits 2, 3, 4 and uniform 3 bits,
# the last with 16-bit side vectors), each container evaluated into
# X.eval.json, and layers.py on a container with low-rank factors:
#  - both scripts exit 0 and write their PNGs, summary.md and numbers.json;
#    tests/py/test_analysis.py checks the PNGs and that numbers.json equals
#    the containers read independently with h5py (and raana-inspect --json
#    when that exists);
#  - the plugin is found without HDF5_PLUGIN_PATH (--plugin-dir, or next to
#    raana-mpi on PATH) and the result is the same;
#  - bad input gets one `SCRIPT: error:` line, the documented exit code and no
#    output directory: a missing container, a missing X.eval.json, a bad CSV,
#    a --plugin-dir without the plugin, an unknown format version, and a zstd
#    dataset with no plugin found; an --out that cannot be made exits 5.
# Usage: test_analysis.sh RAANA_MPI RAANA_EVAL RAANA_INSPECT PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 eval_bin=$2 inspect_bin=$3 plugin_dir=$4 src=$5 mpiexec=$6
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MPLCONFIGDIR=$tmp/mpl PYTHONDONTWRITEBYTECODE=1 # nothing written into the source tree
unset HDF5_PLUGIN_PATH
sweep=$tmp/sweep
mkdir -p "$sweep"
text=$tmp/heldout-head.txt
head -n 100 "$fixture/heldout.txt" >"$text" # about 12 windows of 256 tokens

# The sweep calibrates once: every point reuses these statistics.
run "$mpiexec" -n 2 "$mpi_bin" --calibrate-only "$src/jobs/kjv-tiny.ini" \
  --set "output.path=$sweep/calib.h5"
expect_rc 0 "raana-mpi --calibrate-only"
stats=$sweep/calib.h5.calibration.json

eval_json() { # eval_json NAME: writes $sweep/NAME.eval.json
  "$mpiexec" -n 1 "$eval_bin" --model "$fixture" --container "$sweep/$1.h5" --text "$text" \
    --seq-len 256 --json >"$sweep/$1.eval.json" 2>"$tmp/$1.eval.err"
}

make_point() { # make_point NAME --set ...: one container of the sweep and its evaluation
  local name=$1
  shift
  run "$mpiexec" -n 2 "$mpi_bin" "$src/jobs/kjv-tiny.ini" --set "output.path=$sweep/$name.h5" \
    --set "calibration.statistics=$stats" "$@"
  expect_rc 0 "raana-mpi $name"
  expect_out "calibration: reused from $stats" "raana-mpi $name"
  eval_json "$name" && ok || bad "raana-eval $name: $(tail -2 "$tmp/$name.eval.err")"
}
make_point a2 --set quantize.avg_bits=2
make_point a3 --set quantize.avg_bits=3
make_point a4 --set quantize.avg_bits=4
make_point u3 --set quantize.bits=3 --set quantize.avg_bits=3 --set quantize.side_bits=16
containers=("$sweep/a2.h5" "$sweep/a3.h5" "$sweep/a4.h5" "$sweep/u3.h5")

extra_name="other tool (example)"
cat >"$tmp/other.csv" <<'CSV'
label,effective_bits,ppl_ratio,kl_mean
other-2,2.25,1.9,0.31
other-3,3.25,1.12,0.06
other-4,4.25,1.03,
CSV

run "$py" "$src/analysis/layers.py" "$sweep/a3.h5" --out "$tmp/layers" --plugin-dir "$plugin_dir"
expect_rc 0 "layers.py"
expect_out "wrote 4 plots" "layers.py"
run "$py" "$src/analysis/sweep.py" "${containers[@]}" --out "$tmp/sweep-out" \
  --extra-csv "$tmp/other.csv" --extra-name "$extra_name"
expect_rc 0 "sweep.py"
expect_out "(7 points)" "sweep.py"
run env HDF5_PLUGIN_PATH="$plugin_dir" "$py" "$src/tests/py/test_analysis.py" "$inspect_bin" \
  "$tmp/layers" "$sweep/a3.h5" "$tmp/sweep-out" "$tmp/other.csv" "$extra_name" "${containers[@]}"
expect_rc 0 "test_analysis.py"
printf '%s\n%s\n' "$out" "$errout" | grep -v '^$'

# layers.py on a container with low-rank factors and 16-bit side vectors
# (format version 3; it calibrates: factors need the inputs' second moments)
run "$mpiexec" -n 2 "$mpi_bin" "$src/jobs/kjv-tiny.ini" --set "output.path=$sweep/lr.h5" \
  --set quantize.lowrank_rank=1 --set quantize.side_bits=16
expect_rc 0 "raana-mpi with factors and 16-bit side vectors"
run "$py" "$src/analysis/layers.py" "$sweep/lr.h5" --out "$tmp/layers-lr" --plugin-dir "$plugin_dir"
expect_rc 0 "layers.py, factors"
grep -q '| signs | factors |' "$tmp/layers-lr/summary.md" && ok ||
  bad "summary.md of a container with factors has no factors column"
run env HDF5_PLUGIN_PATH="$plugin_dir" "$py" "$src/tests/py/test_analysis.py" --layers-only \
  "$inspect_bin" "$tmp/layers-lr" "$sweep/lr.h5"
expect_rc 0 "test_analysis.py, factors"

# the plugin found on its own: next to raana-mpi on PATH (the scripts copied
# away from this checkout, so its build trees are not where they look)
copy=$tmp/x/y/analysis
mkdir -p "$copy" && cp "$src"/analysis/*.py "$copy/"
run env PATH="$(dirname "$mpi_bin"):/usr/bin:/bin" "$py" "$copy/layers.py" "$sweep/a3.h5" \
  --out "$tmp/layers-path"
expect_rc 0 "layers.py, plugin next to raana-mpi"
cmp -s "$tmp/layers/numbers.json" "$tmp/layers-path/numbers.json" && ok ||
  bad "numbers.json differs when the plugin is found next to raana-mpi"

# bad input: one error line, its exit code, no output directory
expect_fail() { # expect_fail CODE TEXT what SCRIPT ARGS...
  local code=$1 text=$2 what=$3
  shift 3
  rm -rf "$tmp/bad-out"
  run "$@" --out "$tmp/bad-out"
  expect_rc "$code" "$what"
  expect_err "$text" "$what"
  [ "$(grep -c ': error: ' <<<"$errout")" -eq 1 ] && ok || bad "$what: not one error line: $errout"
  [ ! -e "$tmp/bad-out" ] && ok || bad "$what: left $tmp/bad-out"
}
expect_fail 4 "layers.py: error: $tmp/none.h5: no such file" "missing container" \
  "$py" "$src/analysis/layers.py" "$tmp/none.h5"
cp "$sweep/a2.h5" "$tmp/lonely.h5"
expect_fail 4 "expected $tmp/lonely.eval.json" "container without its evaluation" \
  "$py" "$src/analysis/sweep.py" "$sweep/a3.h5" "$tmp/lonely.h5"
printf 'label,effective_bits,ppl_ratio\nx,three,1.2\n' >"$tmp/bad.csv"
expect_fail 4 "line 2: effective_bits 'three' is not a number" "bad CSV" \
  "$py" "$src/analysis/sweep.py" "$sweep/a3.h5" --extra-csv "$tmp/bad.csv"
expect_fail 2 "--plugin-dir $tmp: no libraana_h5zstd.so there" "plugin dir without the plugin" \
  "$py" "$src/analysis/layers.py" "$sweep/a3.h5" --plugin-dir "$tmp"
printf '{"windows": 3}\n' >"$tmp/lonely.eval.json"
expect_fail 4 "$tmp/lonely.eval.json: no ppl_ratio" "evaluation without a ratio" \
  "$py" "$src/analysis/sweep.py" "$tmp/lonely.h5"
# a container of a format version these scripts do not know
cp "$sweep/a3.h5" "$tmp/v4.h5"
"$py" -c 'import sys, h5py; h5py.File(sys.argv[1], "r+").attrs["format_version"] = 4' "$tmp/v4.h5"
expect_fail 4 "$tmp/v4.h5: container format version 4; these scripts read versions 1 to 3" \
  "unknown format version" "$py" "$src/analysis/layers.py" "$tmp/v4.h5" --plugin-dir "$plugin_dir"
# an output directory that cannot be made (a file is in the way): exit 5
run "$py" "$src/analysis/layers.py" "$sweep/a3.h5" --plugin-dir "$plugin_dir" \
  --out "$tmp/other.csv/x"
expect_rc 5 "unwritable --out"
expect_err "layers.py: error: --out $tmp/other.csv/x: Not a directory" "unwritable --out"
# a container whose /allocation/bits is zstd-compressed, read with no plugin to be found
HDF5_PLUGIN_PATH=$plugin_dir "$py" - "$sweep/a3.h5" "$tmp/zstd.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    bits = f["allocation/bits"][...]
    del f["allocation/bits"]
    f["allocation"].create_dataset("bits", data=bits, chunks=bits.shape, compression=32015,
                                   compression_opts=(3,))
PY
expect_fail 4 "is zstd-compressed (HDF5 filter 32015) and raana's plugin" \
  "zstd dataset, no plugin found" \
  env PATH=/usr/bin:/bin "$py" "$copy/layers.py" "$tmp/zstd.h5"
finish

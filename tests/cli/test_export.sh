# test_export.sh — raana-export end to end on a container of jobs/kjv-tiny.ini:
# F32, BF16 and F16 (sharded, >= 3 files) exports checked by a numpy reader
# (tests/py/check_export.py); the F32 export evaluated by raana-eval as a
# plain checkpoint gives the container's quantized perplexity on the first 12
# windows of the held-out text (1e-4 relative, raana-eval --json); options in
# any order and both --opt value / --opt=value; the
# directory policy (existing OUTDIR, --overwrite of a previous export only,
# symlinks, foreign files); bad containers (unknown format version,
# truncated, no /layers, a NaN) give one error line, the documented exit
# and nothing at OUTDIR, no temporary left behind.
# Usage: test_export.sh RAANA_MPI RAANA_EXPORT RAANA_INSPECT RAANA_EVAL PLUGIN_DIR SOURCE_DIR
set -u
mpi_bin=$1 export_bin=$2 inspect_bin=$3 eval_bin=$4 plugin_dir=$5 src=$6
. "$src/tests/cli/lib.sh"
py=/usr/bin/python3
fixture=$src/tests/data/kjv-tiny
export OPENBLAS_NUM_THREADS=1 HDF5_PLUGIN_PATH=$plugin_dir
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c=$tmp/c.h5

run "$mpi_bin" "$src/jobs/kjv-tiny.ini" --set "output.path=$c"
expect_rc 0 "make the container"

# ---- exports and their contents --------------------------------------------------
run "$export_bin" "$c" "$tmp/f32" --dtype f32
expect_rc 0 "export F32"
expect_out "39 tensors, F32, 1 file" "F32 summary"
run "$export_bin" --dtype=bf16 "$c" "$tmp/bf16"
expect_rc 0 "export BF16 (option first, --opt=value)"
run "$export_bin" "$c" --max-shard-size=1500KB "$tmp/f16" --dtype f16
expect_rc 0 "export F16 sharded (options between arguments)"
run "$export_bin" "$c" "$tmp/default"
expect_rc 0 "export with the default dtype"
"$py" "$src/tests/py/check_export.py" "$c" "$fixture" "$inspect_bin" "$tmp/f32:F32:1" \
  "$tmp/bf16:BF16:1" "$tmp/f16:F16:3" "$tmp/default:BF16:1" && ok || bad "check_export.py"

# ---- the F32 export is the quantized model ------------------------------------------
# perplexity of the only side given, from raana-eval --json
ppl() {
  "$py" -c 'import json,sys
d=json.load(sys.stdin); s=[k for k in ("original","quantized") if k in d]
assert len(s)==1, s; print(repr(d[s[0]]["perplexity"]))'
}
p_export=$("$eval_bin" --model "$tmp/f32" --text "$fixture/heldout.txt" --seq-len 256 --max-windows 12 --json --quiet | ppl)
p_container=$("$eval_bin" --container "$c" --text "$fixture/heldout.txt" --seq-len 256 --max-windows 12 --json --quiet | ppl)
"$py" -c "import sys; a,b=float('$p_export'),float('$p_container'); sys.exit(abs(a-b) > 1e-4*b)" &&
  ok || bad "export ppl $p_export vs container quantized ppl $p_container"
# and not trivially: the original model's perplexity differs by far more
p_orig=$("$eval_bin" --model "$fixture" --text "$fixture/heldout.txt" --seq-len 256 --max-windows 12 --json --quiet | ppl)
"$py" -c "import sys; a,b=float('$p_orig'),float('$p_container'); sys.exit(abs(a-b) < 1e-2*b)" &&
  ok || bad "original ppl $p_orig should differ from the quantized $p_container"

# ---- the command line --------------------------------------------------------------
run "$export_bin" "$c" "$tmp/x" --bogus
expect_rc 2 "unknown option"
expect_err "unknown option '--bogus'" "unknown option named"
run "$export_bin" "$c" "$tmp/x" --dtype
expect_rc 2 "missing value"
expect_err "option '--dtype' needs a value" "missing value named"
run "$export_bin" "$c" "$tmp/x" --dtype f8
expect_rc 2 "bad dtype"
run "$export_bin" "$c" "$tmp/x" --max-shard-size 5XB
expect_rc 2 "bad size"
expect_err "--max-shard-size 5XB" "bad size named"
run "$export_bin" "$c"
expect_rc 2 "one argument"
[ ! -e "$tmp/x" ] && ok || bad "usage errors left $tmp/x"

# ---- the output directory ---------------------------------------------------------
one_line() { # exactly one line on stderr, raana-export's
  local n
  n=$(grep -c . <<<"$errout")
  if [ "$n" -eq 1 ] && grep -q '^raana-export: error: ' <<<"$errout"; then ok; else
    bad "$1: $n stderr lines: $errout"; fi
}
no_temporaries() {
  if ls -A "$tmp" | grep -q 'raana-export-'; then bad "$1: temporary left: $(ls -A "$tmp")"; else ok; fi
}
mkdir "$tmp/user" && echo mine >"$tmp/user/notes.txt"
run "$export_bin" "$c" "$tmp/user"
expect_rc 5 "existing directory"
expect_err "exists; pass --overwrite" "existing directory message"
one_line "existing directory"
run "$export_bin" "$c" "$tmp/user" --overwrite
expect_rc 5 "--overwrite over a user's directory"
expect_err "is not a raana-export output (no raana-export.json); not replacing it" "foreign directory named"
[ "$(cat "$tmp/user/notes.txt")" = mine ] && [ "$(ls -A "$tmp/user")" = notes.txt ] && ok ||
  bad "user's directory touched"
echo x >"$tmp/f16/extra.bin"
run "$export_bin" "$c" "$tmp/f16" --overwrite
expect_rc 5 "--overwrite over an export with a file added"
expect_err "holds 'extra.bin'" "added file named"
rm "$tmp/f16/extra.bin"
ln -s "$tmp/user" "$tmp/link"
run "$export_bin" "$c" "$tmp/link" --overwrite
expect_rc 5 "symlink OUTDIR"
expect_err "is a symbolic link" "symlink message"
[ -L "$tmp/link" ] && [ "$(ls -A "$tmp/user")" = notes.txt ] && ok || bad "symlink or its target touched"
touch "$tmp/afile"
run "$export_bin" "$c" "$tmp/afile" --overwrite
expect_rc 5 "OUTDIR is a file"
# a previous export (sharded F16) is replaced by an F32 one, nothing of it left
run "$export_bin" "$c" "$tmp/f16" --overwrite --dtype f32
expect_rc 0 "--overwrite over a previous export"
"$py" "$src/tests/py/check_export.py" "$c" "$fixture" "$inspect_bin" "$tmp/f16:F32:1" && ok ||
  bad "the replacing export"
mkdir "$tmp/empty"
run "$export_bin" "$c" "$tmp/empty" --overwrite
expect_rc 0 "--overwrite over an empty directory"
no_temporaries "after the directory cases"

# ---- bad containers: one line, documented exit, nothing at OUTDIR ---------------------
"$py" - "$c" "$tmp" <<'EOF'
import shutil, sys
import h5py, numpy as np
c, tmp = sys.argv[1:]
for name in ("v4", "nolayers", "nan"):
    shutil.copyfile(c, f"{tmp}/{name}.h5")
with h5py.File(f"{tmp}/v4.h5", "a") as f:
    f.attrs["format_version"] = np.int64(4)
with h5py.File(f"{tmp}/nolayers.h5", "a") as f:
    del f["layers"]
with h5py.File(f"{tmp}/nan.h5", "a") as f:
    bits = f["tensors/model.norm.weight"][...].copy()
    bits[3] = 0x7FC0  # BF16 NaN
    del f["tensors/model.norm.weight"]
    f["tensors/model.norm.weight"] = bits
    f["tensors/model.norm.weight"].attrs["dtype"] = np.bytes_("BF16")
data = open(c, "rb").read()
open(f"{tmp}/cut.h5", "wb").write(data[: len(data) * 2 // 3])
EOF
bad_case() { # bad_case FILE RC TEXT what
  run "$export_bin" "$tmp/$1" "$tmp/out-$1"
  expect_rc "$2" "$4"
  expect_err "$3" "$4 message"
  one_line "$4"
  [ ! -e "$tmp/out-$1" ] && ok || bad "$4: something at OUTDIR"
}
bad_case v4.h5 8 "container format version 4; this raana reads versions 1 to 3" "unknown format version"
bad_case cut.h5 4 "cut.h5: truncated: " "truncated container"
bad_case nolayers.h5 4 "holds no quantized layers" "no /layers"
bad_case nan.h5 9 "'model.norm.weight' holds NaN" "NaN in a tensor (fails mid-write)"
bad_case missing.h5 4 "missing.h5: cannot open as HDF5" "missing container"
no_temporaries "after the bad containers"

finish

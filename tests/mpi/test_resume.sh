#!/usr/bin/env bash
# test_resume.sh — killing a rank (SIGKILL, via RAANA_FAULT_INJECT) during
# calibration, quantization and writing: the job exits non-zero, nothing
# exists at the final path, and running the same command again completes
# with a container identical to an uninterrupted run (outside /provenance),
# reusing finished calibration and layers. A changed seed or a changed
# weight invalidates exactly the work that depends on it.
# Usage: test_resume.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC [PART]
# PART: "few" (the uninterrupted run and the scenarios on 2 ranks), "many"
# (the resumes on 3 and 4 ranks, against the uninterrupted run that "few"
# left in RAANA_TEST_REF: tests/cli/lib.sh), or both (the default). ctest
# runs them as two entries: only "many" must run alone (RUN_SERIAL); "few",
# most of the runs, shares the machine with another test (tests/CMakeLists.txt).
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4 part=${5:-all}
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
case $part in few | many | all) ;; *) echo "test_resume.sh: PART is few, many or all, not $part" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(ref_dir "$tmp")
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/kjv.h5
# config.ini of a container, its output path (which names its run's tmp) cut out
config_ini() { # config_ini FILE OUTPUT_PATH
  HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import sys, h5py
sys.stdout.write(h5py.File(sys.argv[1], "r")["config.ini"][...].tobytes().decode())' "$1" |
    sed "s|$2||g"
}
same_as() { # same_as REF what (REF written to $(cat REF.path), another run's tmp)
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$1" "$out_h5" \
    --ignore config.ini >/dev/null &&
    [ "$(config_ini "$1" "$(cat "$1.path")")" = "$(config_ini "$out_h5" "$out_h5")" ] && ok ||
    bad "$2: container differs from the uninterrupted run"
}
killed() { # killed what: non-zero exit, nothing at the final path
  [ "$rc" -ne 0 ] && ok || bad "$1: exit 0 after a rank was killed"
  [ ! -e "$out_h5" ] && ok || bad "$1: a file exists at the final path"
}

if [ "$part" != many ]; then
  run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "uninterrupted run"
  mv "$out_h5" "$ref/ref.h5" && echo "$out_h5" >"$ref/ref.h5.path"
elif ! has_ref "$ref/ref.h5" "the resumes on 3 and 4 ranks"; then
  finish
  exit
fi
cp "$ref/ref.h5" "$tmp/ref.h5" && cp "$ref/ref.h5.path" "$tmp/ref.h5.path"

if [ "$part" != many ]; then
  # rank 1 dies in calibration; nothing finished, so the rerun redoes it all
  run env RAANA_FAULT_INJECT=calibrate:1 "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  killed "kill in calibration"
  run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "rerun after calibration kill"; expect_out "layers: 28 encoded, 0 resumed" "rerun"
  same_as "$tmp/ref.h5" "after a kill in calibration"
  rm -f "$out_h5"

  # rank 0 dies in its 40th dataset write; rerun reuses calibration and layers
  run env RAANA_FAULT_INJECT=write:0:40 "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  killed "kill in writing"
  [ -e "$out_h5.partial" ] && ok || bad "kill in writing: expected a .partial file"
  run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "rerun after write kill"
  expect_out "layers: 0 encoded, 28 resumed" "rerun after write kill"
  expect_out "loss 2.255061 (resumed)" "rerun after write kill"
  same_as "$tmp/ref.h5" "after a kill in writing"
  [ ! -e "$out_h5.partial" ] && [ ! -e "$out_h5.resume" ] && ok || bad "leftovers after resume"
  rm -f "$out_h5"
fi

if [ "$part" != few ]; then
  # every layer finished (rank 0 dies in writing), resumed on 3 ranks: layers
  # the resume directory has are predicted at no cost and stay with their
  # block's owner (no weights travel), so each rank handles the 7 layers of
  # each of its blocks (the dry run's split), not a share balanced by cost
  run env RAANA_FAULT_INJECT=write:0:10 "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
  killed "kill in writing, resumed on 3 ranks"
  run "$mpiexec" -n 3 "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "rerun on 3 ranks after a write kill"
  expect_out "layers: 0 encoded, 28 resumed" "rerun on 3 ranks after a write kill"
  same_as "$tmp/ref.h5" "after a kill in writing, resumed on 3 ranks"
  handled=$(sed -n 's/.* quantize: rank \([0-9]*\) encoded \([0-9]*\) layers in .*/\1:\2/p' <<<"$errout" | tr '\n' ' ')
  split=$("$mpiexec" -n 3 "$mpi_bin" --dry-run "$job" | sed -n '/^ranks:/,$p' |
    awk '$1 ~ /^[0-9]+$/ {split($2, b, "-"); printf "%s:%d ", $1, 7 * (b[2] - b[1] + 1)}')
  [ -n "$split" ] && [ "$handled" = "$split" ] && ok ||
    bad "resumed on 3 ranks: layers per rank '$handled', expected its blocks' '$split'"
  rm -f "$out_h5"

  # rank 2 of 3 dies after its second layer; resume on 4 ranks
  run env RAANA_FAULT_INJECT=quantize:2:2 "$mpiexec" -n 3 "$mpi_bin" "$job" --set "output.path=$out_h5"
  killed "kill in quantization"
  run "$mpiexec" -n 4 "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "rerun after quantize kill on another rank count"
  read -r enc res < <(sed -n 's/^layers: \([0-9]*\) encoded, \([0-9]*\) resumed$/\1 \2/p' <<<"$out")
  [ "${enc:-0}" -gt 0 ] && [ "${res:-0}" -gt 0 ] && [ $((enc + res)) -eq 28 ] && ok ||
    bad "quantize kill: expected some layers resumed, some encoded: $(grep layers: <<<"$out")"
  same_as "$tmp/ref.h5" "after a kill in quantization"
  rm -f "$out_h5"
fi
[ "$part" != many ] || { finish; exit; }

# fingerprints: another seed re-encodes every layer but keeps calibration
run env RAANA_FAULT_INJECT=write:0:10 "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
killed "kill before a seed change"
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" --set quantize.seed=99
expect_rc 0 "rerun with another seed"
expect_out "layers: 28 encoded, 0 resumed" "another seed"; expect_out "(resumed)" "another seed"
rm -f "$out_h5"

# fingerprints: one changed weight redoes calibration and that layer only
cp -r "$src/tests/data/kjv-tiny" "$tmp/model"
cat >"$tmp/job.ini" <<INI
[model]
path = model
[calibration]
source = text
text_file = model/calib.txt
n_samples = 2
seq_len = 256
[quantize]
avg_bits = 3
bits = 1, 2, 3, 4, 5, 6, 8
seed = 1234
[output]
path = kjv.h5
INI
run env RAANA_FAULT_INJECT=write:0:10 "$mpiexec" -n 2 "$mpi_bin" "$tmp/job.ini"
killed "kill before a weight change"
"$py" - "$tmp/model/model.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
blob = bytearray(open(path, "rb").read())
n, = struct.unpack("<Q", blob[:8])
t = json.loads(blob[8:8 + n])["model.layers.2.mlp.up_proj.weight"]
blob[8 + n + t["data_offsets"][0]] ^= 0x01  # lowest mantissa bit of one BF16 weight
open(path, "wb").write(blob)
PY
run "$mpiexec" -n 2 "$mpi_bin" "$tmp/job.ini"
expect_rc 0 "rerun after a weight change"
expect_out "layers: 1 encoded, 27 resumed" "weight change"
grep -q "(resumed)" <<<"$out" && bad "weight change: calibration was reused" || ok
finish

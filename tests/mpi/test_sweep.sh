#!/usr/bin/env bash
# test_sweep.sh — a bit-budget sweep that calibrates once ([calibration]
# statistics = FILE), on jobs/kjv-tiny.ini with 2 ranks:
#  - --calibrate-only once; then avg_bits 2.5, 3 and 4 and a uniform 3-bit
#    run, each reusing the JSON: every container equals (outside /provenance,
#    tests/py/compare_containers.py) one calibrated in its own job with the
#    same settings, the report says the calibration was reused, no
#    forward/backward pass ran, and /provenance names the file;
#  - one budget reusing the statistics of a container (made at another
#    budget) instead of the JSON, and --calibrate-only turning a container's
#    statistics back into the identical JSON;
#  - a reusing job killed while writing resumes to the same container;
#  - refused, each with one error line, exit 3 and nothing at the output
#    path: statistics from another checkpoint (one weight byte flipped),
#    with another seq_len, another n_samples, another source, a truncated
#    JSON, garbage, a binary file, a truncated container, a missing file.
# Usage: test_sweep.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC [quick]
# quick (the sanitizer build): only the uniform run of the sweep; the rest
# as above. With RAANA_SWEEP_KEEP=DIR in the environment, the reused
# containers are copied there (sweep-avg2.5.h5, sweep-avg3.h5, sweep-avg4.h5,
# sweep-uniform3.h5) for the analysis scripts; everything else lives in a
# temporary directory removed at exit.
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4 mode=${5:-full} keep=${RAANA_SWEEP_KEEP:-}
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/out.h5 # every job writes here (the path is part of /config.ini)
stats=$tmp/calib.h5.calibration.json
raana() { run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" "$@"; }
same() { # same A B what
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$1" "$2" \
    >/dev/null && ok || bad "$3: containers differ outside /provenance"
}
provenance_names() { # provenance_names FILE.h5 EXPECTED what
  local got
  got=$(HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import sys, h5py
print(h5py.File(sys.argv[1], "r")["provenance"].attrs["calibration_statistics"].decode())' "$1")
  [ "$got" = "$2" ] && ok || bad "$3: /provenance calibration_statistics is '$got', not '$2'"
}
reused() { # reused FILE what: the report and the progress say so; no pass ran
  expect_out "calibration: reused from $1 (2 windows of 256 tokens, loss 2.255061)" "$2"
  expect_err "calibrate: reused from $1" "$2"
  grep -q "calibrate (forward)\|calibrate (backward)" <<<"$errout" &&
    bad "$2: a calibration pass ran" || ok
}

run "$mpiexec" -n 2 "$mpi_bin" "$job" --calibrate-only --set "output.path=$tmp/calib.h5"
expect_rc 0 "--calibrate-only"
[ -f "$stats" ] && ok || bad "--calibrate-only wrote no $stats"

# budgets: avg_bits|candidate bits ("uniform": only 3 bits)
specs=("2.5|1,2,3,4,5,6,8" "3|1,2,3,4,5,6,8" "4|1,2,3,4,5,6,8" "3|3")
names=(avg2.5 avg3 avg4 uniform3)
[ "$mode" = quick ] && specs=("3|3") names=(uniform3)
last=$((${#specs[@]} - 1)) # the uniform run
avg0=${specs[0]%%|*} bits0=${specs[0]#*|}
for i in "${!specs[@]}"; do
  avg=${specs[$i]%%|*} bits=${specs[$i]#*|}
  what="avg_bits $avg, bits $bits"
  raana --set "quantize.avg_bits=$avg" --set "quantize.bits=$bits"
  expect_rc 0 "calibrated $what"
  expect_out "calibration: 2 windows of 256 tokens, loss 2.255061" "calibrated $what"
  mv "$out_h5" "$tmp/fresh$i.h5"
  raana --set "quantize.avg_bits=$avg" --set "quantize.bits=$bits" \
    --set "calibration.statistics=$stats"
  expect_rc 0 "reused $what"
  reused "$stats" "reused $what"
  expect_out "allocation: target $avg bits" "reused $what"
  mv "$out_h5" "$tmp/reused$i.h5"
  same "$tmp/fresh$i.h5" "$tmp/reused$i.h5" "$what"
  [ -z "$keep" ] || cp "$tmp/reused$i.h5" "$keep/sweep-${names[$i]}.h5"
done
provenance_names "$tmp/reused0.h5" "$stats" "reused ${names[0]}"
provenance_names "$tmp/fresh0.h5" "" "calibrated ${names[0]}"
# the uniform run really is uniform: every quantized layer at 3 bits
HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["allocation"]
q = a["quantized"][...] == 1
sys.exit(0 if q.sum() == 28 and np.all(a["bits"][...][q] == 3) else 1)' "$tmp/reused$last.h5" &&
  ok || bad "uniform run: not every layer at 3 bits"

# statistics read from a container (the uniform run's) for the first budget
from_h5=$tmp/fresh$last.h5
raana --set "quantize.avg_bits=$avg0" --set "quantize.bits=$bits0" \
  --set "calibration.statistics=$from_h5"
expect_rc 0 "reused from a container"
reused "$from_h5" "reused from a container"
mv "$out_h5" "$tmp/from-container.h5"
same "$tmp/fresh0.h5" "$tmp/from-container.h5" "statistics from a container"

# --calibrate-only with a container as statistics writes the same JSON, bit
# for bit, as the calibration itself did
run "$mpiexec" -n 2 "$mpi_bin" "$job" --calibrate-only --set "output.path=$tmp/again.h5" \
  --set "calibration.statistics=$from_h5"
expect_rc 0 "--calibrate-only from a container"
cmp -s "$stats" "$tmp/again.h5.calibration.json" && ok ||
  bad "--calibrate-only from a container: JSON differs from the calibrated one"

# a reusing job killed while writing resumes to the same container
run env RAANA_FAULT_INJECT=write:0:40 "$mpiexec" -n 2 "$mpi_bin" "$job" \
  --set "output.path=$out_h5" --set "quantize.avg_bits=$avg0" --set "quantize.bits=$bits0" \
  --set "calibration.statistics=$stats"
[ "$rc" -ne 0 ] && [ ! -e "$out_h5" ] && ok || bad "killed reusing job: exit $rc or output left"
raana --set "quantize.avg_bits=$avg0" --set "quantize.bits=$bits0" \
  --set "calibration.statistics=$stats"
expect_rc 0 "resumed reusing job"
expect_out "layers: 0 encoded, 28 resumed" "resumed reusing job"
reused "$stats" "resumed reusing job"
same "$tmp/fresh0.h5" "$out_h5" "resumed reusing job"
rm -rf "$out_h5" "$out_h5.resume"

# ---- refused ----
refused() { # refused TEXT what: exit 3, one error line with TEXT, no output
  expect_rc 3 "$2"
  expect_one_error_line "$2"
  expect_err "$1" "$2"
  [ ! -e "$out_h5" ] && [ ! -e "$out_h5.partial" ] && ok || bad "$2: output left at $out_h5"
  rm -rf "$out_h5.resume"
}
cp -r "$src/tests/data/kjv-tiny" "$tmp/model"
"$py" - "$tmp/model/model.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f: # flip one bit of the last weight byte
    f.seek(-1, 2)
    b = f.read(1)
    f.seek(-1, 2)
    f.write(bytes([b[0] ^ 1]))
PY
raana --set "model.path=$tmp/model" --set "calibration.statistics=$stats"
refused "$stats: cannot reuse these calibration statistics: made from another checkpoint" \
  "another checkpoint"
# the other refusals on one rank, without mpiexec: they need no pipeline
raana() { run "$mpi_bin" "$job" --set "output.path=$out_h5" "$@"; }
raana --set calibration.seq_len=128 --set "calibration.statistics=$stats"
refused "other calibration settings (seq_len 256 there, 128 here)" "another seq_len"
raana --set calibration.n_samples=1 --set "calibration.statistics=$stats"
refused "other calibration settings (n_samples 2 there, 1 here; 2 windows there, 1 here)" \
  "another n_samples"
raana --set "calibration.statistics=$from_h5" --set calibration.source=zeroshot
refused "$from_h5: cannot reuse these calibration statistics: other calibration settings (source text there, zeroshot here" \
  "another source, statistics from a container"
head -c 2000 "$stats" >"$tmp/truncated.json"
raana --set "calibration.statistics=$tmp/truncated.json"
refused "$tmp/truncated.json: not usable calibration statistics: not JSON" "truncated JSON"
printf 'seq_len = 256\n' >"$tmp/garbage.json"
raana --set "calibration.statistics=$tmp/garbage.json"
refused "$tmp/garbage.json: not usable calibration statistics: not JSON" "garbage"
raana --set "calibration.statistics=$src/tests/data/kjv-tiny/tokenizer.model"
refused "tokenizer.model: not usable calibration statistics: a binary file" "a binary file"
head -c 100000 "$from_h5" >"$tmp/truncated.h5"
raana --set "calibration.statistics=$tmp/truncated.h5"
refused "$tmp/truncated.h5: truncated: 100000 bytes" "truncated container"
raana --set "calibration.statistics=$tmp/missing.json"
refused "[calibration] statistics: $tmp/missing.json" "missing file"
finish

#!/usr/bin/env bash
# test_blas_warning.sh — the tools report the BLAS core and warn when it is
# older than the CPU (src/util/blas_info.c): with OPENBLAS_CORETYPE=Prescott
# (SSE3 kernels) on a CPU whose /proc/cpuinfo lists avx2 or avx512f, the job
# log and raana-eval say "warning: OpenBLAS runs its Prescott
# kernels" and name the fix (SkylakeX with AVX-512, Haswell with AVX2 only);
# on a CPU without AVX2 they must not warn. OPENBLAS_CORETYPE=Haswell on a
# CPU with AVX-512 F/BW/DQ/VL gets a note naming SkylakeX; SkylakeX none.
# With the library's own choice of core the header names that core. raana-inspect --json carries the same
# facts as an object. The job and the evaluation still succeed.
# Usage: test_blas_warning.sh RAANA_MPI RAANA_EVAL RAANA_INSPECT SOURCE_DIR
set -u
mpi_bin=$1 eval_bin=$2 inspect_bin=$3 src=$4
. "$src/tests/cli/lib.sh"
export OPENBLAS_NUM_THREADS=1
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

flags=$(grep -m1 '^flags' /proc/cpuinfo)
skx=1 # AVX-512 F, BW, DQ and VL: what OpenBLAS's SkylakeX kernels need
for f in avx512f avx512bw avx512dq avx512vl; do grep -qw $f <<<"$flags" || skx=0; done
if grep -qw avx512f <<<"$flags"; then fix=SkylakeX unit=AVX-512
elif grep -qw avx2 <<<"$flags"; then fix=Haswell unit=AVX2
else fix="" unit=""; fi

cat >"$tmp/job.ini" <<INI
[model]
path = $fixture
[calibration]
source = text
text_file = $fixture/calib.txt
n_samples = 1
seq_len = 64
[output]
path = $tmp/out.h5
INI

# the job log header, with the generic kernel forced
run env OPENBLAS_CORETYPE=Prescott "$mpi_bin" --calibrate-only "$tmp/job.ini"
expect_rc 0 "job with OPENBLAS_CORETYPE=Prescott"
expect_err "blas: OpenBLAS" "header: blas line"
expect_err "; core Prescott, 1 threads" "header: the forced core"
if [ -n "$fix" ]; then
  expect_err "blas: warning: OpenBLAS runs its Prescott kernels on a CPU with $unit" \
    "header: the warning"
  expect_err "OPENBLAS_CORETYPE=$fix" "header: the fix"
else
  if grep -q "warning: OpenBLAS" <<<"$errout"; then bad "no AVX2: warned anyway"; else ok; fi
fi

# the library's own choice: named, and no warning unless it is a generic core
run "$mpi_bin" --calibrate-only "$tmp/job.ini"
expect_rc 0 "job with the default core"
core=$(sed -n 's/^blas: .*; core \(\S*\), 1 threads$/\1/p' <<<"$errout")
[ -n "$core" ] && ok || bad "default core: no blas line: $errout"
case "$core" in
  Prescott|Core2|Nehalem|Penryn|Dunnington|Atom|Sandybridge|Katmai|Coppermine|Northwood|Banias) old=1 ;;
  *) old=0 ;;
esac
if [ "$old" = 1 ] && [ -n "$fix" ]; then expect_err "OPENBLAS_CORETYPE=$fix" "default core $core: warns"
elif grep -q "warning: OpenBLAS" <<<"$errout"; then bad "default core $core: warned: $errout"
else ok; fi

# the milder case: AVX2 kernels on an AVX-512 CPU get a note naming
# SkylakeX, and SkylakeX itself none (each core only where the CPU runs it)
if grep -qw avx2 <<<"$flags"; then
  run env OPENBLAS_CORETYPE=Haswell "$mpi_bin" --calibrate-only "$tmp/job.ini"
  expect_rc 0 "job with OPENBLAS_CORETYPE=Haswell"
  if [ "$skx" = 1 ]; then
    expect_err "blas: note: OpenBLAS runs its Haswell (AVX2) kernels on a CPU with AVX-512" \
      "Haswell on AVX-512: the note"
    expect_err "OPENBLAS_CORETYPE=SkylakeX may be faster" "the note names SkylakeX"
  elif grep -q "note: OpenBLAS" <<<"$errout"; then bad "Haswell without AVX-512: noted"
  else ok; fi
  if grep -q "warning: OpenBLAS" <<<"$errout"; then bad "Haswell: warned: $errout"; else ok; fi
fi
if [ "$skx" = 1 ]; then
  run env OPENBLAS_CORETYPE=SkylakeX "$mpi_bin" --calibrate-only "$tmp/job.ini"
  expect_rc 0 "job with OPENBLAS_CORETYPE=SkylakeX"
  expect_err "; core SkylakeX, 1 threads" "header: SkylakeX"
  if grep -q "note: OpenBLAS\|warning: OpenBLAS" <<<"$errout"; then bad "SkylakeX: noted: $errout"
  else ok; fi
fi

# raana-eval: the warning on stderr even with --quiet; the result unchanged
run env OPENBLAS_CORETYPE=Prescott "$eval_bin" --model "$fixture" --text "$fixture/heldout.txt" \
  --seq-len 64 --max-windows 1 --quiet
expect_rc 0 "raana-eval with OPENBLAS_CORETYPE=Prescott"
expect_out "original perplexity:" "raana-eval result"
if [ -n "$fix" ]; then
  expect_err "raana-eval: warning: OpenBLAS runs its Prescott kernels" "raana-eval warning"
  expect_err "OPENBLAS_CORETYPE=$fix" "raana-eval: the fix"
else
  [ -z "$errout" ] && ok || bad "raana-eval, no AVX2: stderr: $errout"
fi

# raana-inspect --json: the reader's BLAS as an object
run "$mpi_bin" "$tmp/job.ini" --set quantize.avg_bits=3
expect_rc 0 "quantize the fixture"
run env OPENBLAS_CORETYPE=Prescott "$inspect_bin" --json "$tmp/out.h5"
expect_rc 0 "raana-inspect --json"
got=$(/usr/bin/python3 -c '
import json, sys
b = json.loads(sys.stdin.read())["blas"]
print(b["core"], b["threads"], b["avx2"] or b["avx512"], "warning" if b["warning"] else "none",
      "note" if b["note"] else "none")' <<<"$out")
want="Prescott 1 $([ -n "$fix" ] && echo True || echo False) $([ -n "$fix" ] && echo warning || echo none) none"
[ "$got" = "$want" ] && ok || bad "inspect --json blas: '$got', expected '$want'"

finish

#!/usr/bin/env bash
# test_quantized_ppl.sh — what the containers are worth: held-out
# perplexity of the quantized model built from each container alone
# (raana-eval --container).
#  - at 8 bits (uniform) it is within 0.1% of the reference's unquantized
#    perplexity (reference.json heldout_ppl, from PyTorch);
#  - it rises as the budget falls (4 > 3 > 2 bits, each above unquantized);
#  - at 2, 3 and 4 bits AllocateBits (candidates 1..8) beats uniform bits at
#    the same budget, the paper's claim, on windows of the training context.
# Usage: test_quantized_ppl.sh RAANA_MPI RAANA_EVAL SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 eval_bin=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['heldout_ppl']['ppl'])" \
  "$fixture/reference.json")

ppl_of() { # ppl_of NAME [--set ...]: quantizes, then prints the perplexity
  local name=$1
  shift
  "$mpiexec" -n 2 "$mpi_bin" "$src/jobs/kjv-tiny.ini" --set "output.path=$tmp/$name.h5" "$@" \
    >/dev/null 2>"$tmp/$name.err" || { bad "$name: raana-mpi failed: $(tail -1 "$tmp/$name.err")"; echo 0; return; }
  "$mpiexec" -n 2 "$eval_bin" --container "$tmp/$name.h5" --text "$fixture/heldout.txt" \
    --seq-len 256 --quiet | sed -n 's/^quantized perplexity: \([0-9.]*\) .*/\1/p'
}
less_than() { # less_than A B what
  awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }' && ok || bad "$3: $1 is not below $2"
}

u8=$(ppl_of u8 --set quantize.bits=8 --set quantize.avg_bits=8)
awk -v a="$u8" -v r="$ref" 'BEGIN { d = (a - r) / r; exit !(d < 1e-3 && d > -1e-3) }' && ok ||
  bad "8 bits: perplexity $u8 not within 0.1% of the reference $ref"
prev=$ref
for b in 4 3 2; do
  alloc=$(ppl_of a$b --set quantize.avg_bits=$b)
  uniform=$(ppl_of u$b --set quantize.bits=$b --set quantize.avg_bits=$b)
  echo "avg_bits $b: AllocateBits $alloc, uniform $uniform (unquantized $ref)"
  less_than "$alloc" "$uniform" "AllocateBits vs uniform at $b bits"
  less_than "$prev" "$alloc" "perplexity rises from $((b + 1)) to $b bits"
  prev=$alloc
done
finish

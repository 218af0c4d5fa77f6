#!/usr/bin/env bash
# run-kjv-tiny.sh — the README's first command: installs dependencies,
# builds raana-mpi and runs the job on the bundled kjv-tiny model with two
# MPI ranks: the plan, then the whole job (calibration, AllocateBits,
# RaBitQ-H quantization, the HDF5 container), a look into the container,
# and one raana-eval pass over the held-out text that scores the original
# checkpoint and the quantized model from the container on the same windows:
# both perplexities, their ratio, the KL divergence and top-1 agreement.
# Works as root or as a user with sudo (for apt-get only).
#   RANKS=N   number of MPI ranks (default 2)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash tests/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl=self,vader OPENBLAS_NUM_THREADS=1
ranks=${RANKS:-2}
out=$src/build/kjv-tiny.raana.h5
fixture=tests/data/kjv-tiny

echo "== plan (raana-mpi --dry-run)"
mpirun --oversubscribe -n "$ranks" build/raana-mpi --dry-run --set output.path="$out" jobs/kjv-tiny.ini
echo
echo "== the job: calibrate, allocate, quantize, write (raana-mpi)"
mpirun --oversubscribe -n "$ranks" build/raana-mpi --set output.path="$out" jobs/kjv-tiny.ini
echo
echo "== the container (raana-inspect)"
# captured, not piped into head: a reader that stops early would kill
# raana-inspect with SIGPIPE, and pipefail would fail the demo
inspect=$(build/raana-inspect "$out")
head -6 <<<"$inspect"
echo
echo "== held-out text: the original checkpoint against the container (raana-eval)"
report=$(mpirun --oversubscribe -n "$ranks" build/raana-eval --model "$fixture" --container "$out" \
  --text "$fixture/heldout.txt" --seq-len 256 --quiet)
printf '%s\n' "$report"
for line in "original perplexity" "quantized perplexity" "ppl ratio" "KL divergence" \
  "top-1 agreement"; do
  grep -q "^$line: " <<<"$report" ||
    { echo "run-kjv-tiny: error: raana-eval printed no '$line:' line" >&2; exit 1; }
done
echo
echo "== done"
echo "container: $out"
echo "read it:   build/raana-inspect $out"
echo "           HDF5_PLUGIN_PATH=$src/build/hdf5-plugin h5dump -H $out   (or h5py; docs/FORMAT.md)"

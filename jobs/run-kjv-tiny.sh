#!/usr/bin/env bash
# run-kjv-tiny.sh — the README's first command: installs dependencies,
# builds raana-mpi and runs the job on the bundled kjv-tiny model with two
# MPI ranks: the plan, then the whole job (calibration, AllocateBits,
# RaBitQ-H quantization, the HDF5 container), a look into the container,
# and held-out perplexity before and after quantization.
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
echo "== plan (raana-mpi --dry-run)"
mpirun --oversubscribe -n "$ranks" build/raana-mpi --dry-run --set output.path="$out" jobs/kjv-tiny.ini
echo
echo "== the job: calibrate, allocate, quantize, write (raana-mpi)"
mpirun --oversubscribe -n "$ranks" build/raana-mpi --set output.path="$out" jobs/kjv-tiny.ini
echo
echo "== the container (raana-inspect; h5dump/h5py need HDF5_PLUGIN_PATH=$src/build/hdf5-plugin)"
build/raana-inspect "$out" | head -6
echo
echo "== held-out perplexity (raana-eval), unquantized and from the container"
for c in "" "$out"; do
  mpirun --oversubscribe -n "$ranks" build/raana-eval --model tests/data/kjv-tiny \
    --text tests/data/kjv-tiny/heldout.txt --seq-len 256 --quiet ${c:+--container "$c"} |
    sed -n "s/^perplexity: /${c:+quantized  }${c:-unquantized}: perplexity /p"
done

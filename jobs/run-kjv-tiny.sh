#!/usr/bin/env bash
# run-kjv-tiny.sh — the README's first command: installs dependencies,
# builds raana-mpi and runs the job on the bundled kjv-tiny model with two
# MPI ranks: the plan, calibration (per-layer sensitivity statistics) and
# AllocateBits (each layer's bit width), and the model's held-out perplexity.
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
echo "== calibration and bit allocation (raana-mpi --allocate-only)"
mpirun --oversubscribe -n "$ranks" build/raana-mpi --allocate-only --set output.path="$out" jobs/kjv-tiny.ini
echo
echo "== held-out perplexity of the unquantized model (raana-eval)"
mpirun --oversubscribe -n "$ranks" build/raana-eval --model tests/data/kjv-tiny \
  --text tests/data/kjv-tiny/heldout.txt --seq-len 256 --quiet
echo
echo "Note: this version stops after the bit allocation. Quantizing the layers and writing"
echo "the HDF5 container (the rest of the job) are being built; see README 'Status'."

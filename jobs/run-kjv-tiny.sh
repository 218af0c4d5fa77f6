#!/usr/bin/env bash
# run-kjv-tiny.sh — the README's first command: installs dependencies,
# builds raana-mpi and runs the job on the bundled kjv-tiny model with two
# MPI ranks.
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
echo "Note: this version implements the plan stage only (calibration, allocation,"
echo "quantization and the container are in progress), so the job runs as --dry-run."
mpirun --oversubscribe -n "${RANKS:-2}" build/raana-mpi --dry-run jobs/kjv-tiny.ini

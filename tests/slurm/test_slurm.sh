#!/usr/bin/env bash
# test_slurm.sh — raana-mpi under a real single-node Slurm (tests/slurm/
# cluster.sh): `sbatch slurm/quantize.sbatch` with 2 tasks and `srun
# --mpi=pmix` with 3 tasks produce containers identical to mpirun's (outside
# /provenance, which must say 2 and 3 ranks); srun without PMIx is refused
# with exit code 7 instead of running N one-rank jobs.
# Usage: test_slurm.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 plugin_dir=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
. "$src/tests/slurm/cluster.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
py=/usr/bin/python3
tmp=$(mktemp -d)
chmod 755 "$tmp" # munged refuses a socket below a directory others cannot enter
trap 'cluster_stop; rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
same() { # same A B what
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$1" "$2" >/dev/null &&
    ok || bad "$3: container differs from mpirun's"
}
ranks_of() { "$py" -c 'import h5py,sys; print(int(h5py.File(sys.argv[1])["provenance"].attrs["n_ranks"]))' "$1"; }

out_h5=$tmp/kjv.h5 # the same path in every run: config.ini, stored in the container, names it
run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5"
expect_rc 0 "mpirun reference"
mv "$out_h5" "$tmp/mpirun.h5"

if ! cluster_start "$tmp/slurm"; then
  bad "could not start Slurm (see above)"
  finish
  exit
fi
ok

# sbatch with the template, 2 tasks
run env RAANA_MPI="$mpi_bin" sbatch --wait --ntasks=2 --chdir="$tmp" \
  --output="$tmp/sbatch-%j.log" "$src/slurm/quantize.sbatch" "$job" --set "output.path=$out_h5"
expect_rc 0 "sbatch quantize.sbatch"
grep -q "wrote $out_h5" "$tmp"/sbatch-*.log && ok || bad "sbatch log: $(cat "$tmp"/sbatch-*.log)"
mv "$out_h5" "$tmp/sbatch.h5"
same "$tmp/mpirun.h5" "$tmp/sbatch.h5" "sbatch"
[ "$(ranks_of "$tmp/sbatch.h5")" = 2 ] && ok || bad "sbatch: provenance n_ranks"

# srun directly, 3 tasks
run srun --mpi=pmix -n 3 "$mpi_bin" "$job" --set "output.path=$out_h5"
expect_rc 0 "srun --mpi=pmix -n 3"
mv "$out_h5" "$tmp/srun.h5"
same "$tmp/mpirun.h5" "$tmp/srun.h5" "srun -n 3"
[ "$(ranks_of "$tmp/srun.h5")" = 3 ] && ok || bad "srun: provenance n_ranks"

# srun without PMIx: refused before MPI_Init with one clear line
run srun --mpi=none -n 2 "$mpi_bin" --dry-run "$job"
[ "$rc" -ne 0 ] && ok || bad "srun --mpi=none: exit 0"
expect_err "Slurm started 2 tasks without PMIx" "srun --mpi=none"
expect_one_error_line "srun --mpi=none"
finish

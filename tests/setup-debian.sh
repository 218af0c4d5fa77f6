#!/usr/bin/env bash
# setup-debian.sh — installs every Debian (bookworm) package raana-mpi needs
# to build, test and analyse containers. Idempotent: does nothing when all
# are present. Run as root, or as a user with sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin                 # MPI
  libhdf5-openmpi-dev hdf5-tools             # parallel HDF5, h5dump
  libscalapack-openmpi-dev                   # ScaLAPACK (Open MPI flavour)
  libopenblas-dev liblapacke-dev             # BLAS + LAPACK
  libzstd-dev                                # Zstandard
  libinih-dev libcjson-dev                   # INI and JSON parsers
  libpcre2-dev libutf8proc-dev               # tokenizer regexes and Unicode NFC
  libxxhash-dev                              # input fingerprints for resuming
  python3 python3-numpy python3-h5py python3-hdf5plugin python3-matplotlib  # tests and analysis/
  clang libclang-rt-14-dev                   # libFuzzer targets
  clang-format                               # tests/check-format.sh
  valgrind
  slurm-wlm slurmctld slurmd slurm-client munge slurm-wlm-basic-plugins  # the Slurm test
)

# Node.js runs Hugging Face's JavaScript tokenizer in a cross-check test;
# use the machine's node if it has one, else Debian's.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-debian: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "setup-debian: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# test_output.sh — bad settings and bad places for the container: avg_bits
# below the smallest or above the largest candidate, an empty candidate
# list, a missing or unwritable output directory (read-only file system,
# /proc), an existing output without overwrite, and a full disk (a small
# tmpfs when this machine lets root mount one, and a file-size limit). Each
# gives one clear error and a non-zero exit, and leaves nothing at the final
# path. Usage: test_output.sh RAANA_MPI SOURCE_DIR MPIEXEC
set -u
bin=$1 src=$2 mpiexec=$3
. "$src/tests/cli/lib.sh"
mpi_test_env
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/out.h5
nothing_at() { # nothing_at PATH what
  [ ! -e "$1" ] && [ ! -e "$1.partial" ] && ok || bad "$2: something was left at $1"
}

run "$bin" "$job" --set "output.path=$out_h5" --set quantize.avg_bits=0.5
expect_rc 3 "avg_bits below"; expect_err "avg_bits = 0.5 is outside the candidate bits [1, 8]" \
  "avg_bits below"; expect_one_error_line "avg_bits below"; nothing_at "$out_h5" "avg_bits below"
run "$bin" "$job" --set "output.path=$out_h5" --set quantize.bits=1,2,3 --set quantize.avg_bits=5
expect_rc 3 "avg_bits above"; expect_err "avg_bits = 5 is outside the candidate bits [1, 3]" \
  "avg_bits above"; nothing_at "$out_h5" "avg_bits above"
run "$bin" "$job" --set "output.path=$out_h5" --set quantize.bits=
expect_rc 3 "empty candidates"; expect_err "the candidate list is empty" "empty candidates"
nothing_at "$out_h5" "empty candidates"

run "$bin" "$job" --set "output.path=$tmp/no/such/dir/out.h5"
expect_rc 5 "missing directory"; expect_err "$tmp/no/such/dir: output directory does not exist" \
  "missing directory"; expect_one_error_line "missing directory"
touch "$tmp/afile"
run "$bin" "$job" --set "output.path=$tmp/afile/out.h5"
expect_rc 5 "directory is a file"; expect_err "$tmp/afile: output directory" "directory is a file"
run "$bin" "$job" --set "output.path=/proc/out.h5"
expect_rc 5 "/proc"; expect_err "/proc/out.h5.lock: cannot create" "/proc"
nothing_at /proc/out.h5 "/proc"

# an existing output is kept unless overwrite = true
echo "precious" >"$out_h5"
run "$bin" "$job" --set "output.path=$out_h5" --set output.overwrite=false
expect_rc 3 "existing output"; expect_err "$out_h5: output exists; remove it or set [output] overwrite = true" \
  "existing output"; expect_one_error_line "existing output"
[ "$(cat "$out_h5")" = precious ] && ok || bad "existing output was modified"
run "$bin" "$job" --set "output.path=$out_h5" --set output.overwrite=true
expect_rc 0 "overwrite = true"; expect_out "wrote $out_h5" "overwrite = true"
[ "$(head -c 4 "$out_h5" | od -An -c | tr -d ' ')" = "211HDF" ] && ok || bad "overwrite: not HDF5"
rm -f "$out_h5"

# full disk: a 1.5 MiB file-size limit on the ranks (not on mpirun, whose
# PMIx needs its shared-memory files), TCP between them for the same reason
run env OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo "$mpiexec" -n 2 \
  bash -c 'ulimit -f 1500; exec "$@"' sh "$bin" "$job" --set "output.path=$out_h5"
expect_rc 5 "file-size limit"
expect_err "cannot reserve" "file-size limit"; expect_err "file-size limit (ulimit -f)" "file-size limit"
expect_one_error_line "file-size limit"; nothing_at "$out_h5" "file-size limit"
rm -rf "$out_h5.resume"

# full disk: a 1.8 MiB tmpfs, if this machine allows mounting one
if mount -t tmpfs -o size=1800k tmpfs "$mnt" 2>/dev/null; then
  run "$mpiexec" -n 2 "$bin" "$job" --set "output.path=$mnt/out.h5"
  expect_rc 5 "full tmpfs"; expect_err "No space left on device" "full tmpfs"
  expect_one_error_line "full tmpfs"; nothing_at "$mnt/out.h5" "full tmpfs"
  umount "$mnt"
  mount -t tmpfs -o ro,size=1m tmpfs "$mnt"
  run "$bin" "$job" --set "output.path=$mnt/out.h5"
  expect_rc 5 "read-only file system"; expect_err "$mnt: output directory is not writable" \
    "read-only file system"; nothing_at "$mnt/out.h5" "read-only file system"
  umount "$mnt"
else
  echo "note: cannot mount a tmpfs here; the file-size limit covered the full disk"
fi
finish

#!/usr/bin/env bash
# test_h5zstd.sh — the zstd HDF5 filter (ID 32015) across tools: raana
# writes and reads back (filter parameters kept, data at least 4x smaller);
# h5dump and h5py read raana's file through the plugin (HDF5_PLUGIN_PATH);
# h5py writes with hdf5plugin.Zstd(clevel=7) and raana reads that.
# Usage: test_h5zstd.sh H5ZSTD_TOOL PLUGIN_DIR SOURCE_DIR
set -u
tool=$1 plugin_dir=$2 src=$3
. "$src/tests/cli/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run "$tool" write "$tmp/raana.h5"; expect_rc 0 "raana writes"
run "$tool" check "$tmp/raana.h5"; expect_rc 0 "raana reads back, filter level 5, compressed"

# h5dump exits 0 even when it cannot decode: check the values it prints
run env HDF5_PLUGIN_PATH="$plugin_dir" h5dump -p -d /x -s 2,0 -c 1,8 "$tmp/raana.h5"
expect_rc 0 "h5dump"; expect_out "FILTERS" "h5dump"
expect_out "(2,0): 7.75, 8, 8.25, 8.5, 8.75, 9, 9.25, 9.5" "h5dump decodes through the plugin"

py=/usr/bin/python3
run env HDF5_PLUGIN_PATH="$plugin_dir" "$py" - "$tmp/raana.h5" <<'PY'
import sys
import h5py
import numpy as np
x = h5py.File(sys.argv[1], "r")["x"][...]
want = (np.arange(x.size) % 97 * 0.25).astype(np.float32).reshape(x.shape)
assert x.shape == (1000, 64) and np.array_equal(x, want), "values differ"
print("h5py ok")
PY
expect_rc 0 "h5py reads raana's file"; expect_out "h5py ok" "h5py reads raana's file"

run env HDF5_PLUGIN_PATH="$plugin_dir" "$py" - "$tmp/py.h5" <<'PY'
import sys
import h5py
import hdf5plugin
import numpy as np
x = (np.arange(64000) % 97 * 0.25).astype(np.float32).reshape(1000, 64)
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("x", data=x, chunks=(100, 64), **hdf5plugin.Zstd(clevel=7))
print("written")
PY
expect_rc 0 "h5py writes with hdf5plugin.Zstd"
run "$tool" read "$tmp/py.h5"; expect_rc 0 "raana reads h5py's zstd file"
finish

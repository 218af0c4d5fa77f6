"""compare_rebuilt.py — two containers of the same job whose low-rank
factors came from different SVD teams (ScaLAPACK grids, or LAPACK on one
rank) rebuild to the same weights: every layer rebuilt with numpy
(check_container.dequantize, factors included) within TOL relative
(Frobenius) of the reference's, the codes and rescales byte-identical (the
factors are the only part a team's floating point can change), and the
same layers carry factors of the same rank.

Usage: compare_rebuilt.py REF.h5 OTHER.h5 [TOL]   (default 1e-6)
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_container import check, dequantize  # noqa: E402
import check_container  # noqa: E402


def main():
    ref_path, other_path = sys.argv[1:3]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-6
    ref, other = h5py.File(ref_path, "r")["layers"], h5py.File(other_path, "r")["layers"]
    check(sorted(ref) == sorted(other), "the same quantized layers")
    worst, factored, differ = 0.0, 0, 0
    for name in ref:
        a, b = ref[name], other[name]
        for ds in ("codes", "rescale", "signs"):
            check(np.array_equal(a[ds][...], b[ds][...]), f"{name}/{ds} identical")
        ra, rb = int(a.attrs.get("lowrank_rank", 0)), int(b.attrs.get("lowrank_rank", 0))
        check(ra == rb, f"{name}: lowrank_rank {ra} vs {rb}")
        factored += ra > 0
        if ra > 0:
            differ += not np.array_equal(a["lowrank_a"][...], b["lowrank_a"][...])
        wa, wb = dequantize(a)[0], dequantize(b)[0]
        rel = np.linalg.norm(wa - wb) / np.linalg.norm(wa)
        worst = max(worst, rel)
        check(rel <= tol, f"{name}: rebuilt weights differ by {rel:.2e} relative (tolerance {tol})")
    print(f"compare_rebuilt.py: {len(ref)} layers, {factored} with factors ({differ} with other "
          f"factor bits); worst relative difference {worst:.2e}")
    print(f"compare_rebuilt.py: {check_container.passed} passed, {check_container.failed} failed")
    sys.exit(1 if check_container.failed else 0)


if __name__ == "__main__":
    main()

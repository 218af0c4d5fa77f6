"""check_pca.py — the PCA trick ([quantize] pca_rank, src/pipeline/quantize.c)
against numpy in float64.

Given a container made with pca_rank = R and the checkpoint, for every
quantized layer:
  1. it stores factors of rank min(R, d_in, d_out) (lowrank_rank);
  2. the stored A B (IEEE half factors, read as float16) is numpy's best
     rank-r approximation of W (the truncated SVD, unweighted) up to the
     factors' 16-bit rounding: within 2e-3 relative, unless the r-th and
     (r+1)-th singular values are within 1% (the subspace is then not
     determined; only the captured energy is checked, to 1e-3);
  3. the codes carry the rest: the rebuild without the factors holds at
     most a tenth of W's top-r part (U_r^T What V_r against S_r), so the
     factors were taken out before quantizing, not added on top;
  4. effective_bits counts 16 bits per factor entry, and the allocation's
     codes plus factors stay within avg_bits.
Usage: check_pca.py CONTAINER MODEL_DIR RANK"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_container  # noqa: E402
from check_container import check, dequantize  # noqa: E402
from llama_numpy import read_checkpoint  # noqa: E402


def main():
    path, model_dir, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _, weights = read_checkpoint(model_dir)
    f = h5py.File(path, "r")
    factor_bits = weights_total = 0.0
    layers = 0
    for name in f["layers"]:
        g = f["layers"][name]
        d_in, d_out = int(g.attrs["d_in"]), int(g.attrs["d_out"])
        r = min(rank, d_in, d_out)
        weights_total += d_in * d_out
        check(int(g.attrs.get("lowrank_rank", 0)) == r, f"{name}: lowrank_rank {r}")
        if "lowrank_a" not in g:
            continue
        layers += 1
        factor_bits += 16.0 * r * (d_in + d_out)
        w = weights[name + ".weight"].astype(np.float64)
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        best = (u[:, :r] * s[:r]) @ vt[:r]
        fa = g["lowrank_a"][...].view(np.float16).astype(np.float64)
        fb = g["lowrank_b"][...].view(np.float16).astype(np.float64)
        ab = fa @ fb
        gap = s[r - 1] - s[r] if r < len(s) else np.inf
        if gap > 0.01 * s[r - 1]:
            rel = np.linalg.norm(ab - best) / np.linalg.norm(best)
            check(rel <= 2e-3, f"{name}: A B vs numpy's rank-{r} SVD: {rel:.2e}")
        energy = np.linalg.norm(ab) / np.linalg.norm(best)
        check(abs(energy - 1) <= 1e-3, f"{name}: |A B| / |W_r| = {energy:.6f}")
        # the codes alone hold (almost) nothing of W's top r directions:
        # what they hold there is quantization noise, not S_r
        codes_only = dequantize(g, factors=False)[0]
        top = np.linalg.norm(u[:, :r].T @ codes_only @ vt[:r].T)
        check(top <= 0.1 * np.linalg.norm(s[:r]),
              f"{name}: the codes hold {top:.4g} of W's top-{r} part "
              f"{np.linalg.norm(s[:r]):.4g}: the factors were not taken out first")
        stored = (8 * g["codes"].size + sum(8 * g[k].size * g[k].dtype.itemsize for k in
                  ("rescale", "mu", "row_scale", "held_cols", "held_values", "signs",
                   "lowrank_a", "lowrank_b") if k in g)) / (d_in * d_out)
        check(abs(stored - float(g.attrs["effective_bits"])) <= 1e-12,
              f"{name}: effective_bits {float(g.attrs['effective_bits'])} != {stored} stored")
    check(layers == len(f["layers"]), f"every one of {len(f['layers'])} layers has factors")
    alloc = f["allocation"]
    fb_attr = float(alloc.attrs["factor_bits"])
    check(abs(fb_attr - factor_bits / weights_total) <= 1e-12 * max(fb_attr, 1),
          f"factor_bits {fb_attr} = 16 r (d_in + d_out) summed / quantized weights")
    check(float(alloc.attrs["achieved_avg_bits"]) + fb_attr <= float(alloc.attrs["avg_bits"])
          + 1e-12, "codes plus factors within avg_bits")
    print(f"check_pca: {check_container.passed} passed, {check_container.failed} failed "
          f"({layers} layers)")
    return 1 if check_container.failed else 0


if __name__ == "__main__":
    sys.exit(main())

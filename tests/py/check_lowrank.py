"""check_lowrank.py — raana's low-rank compensation ([quantize]
lowrank_rank, src/quant/lowrank.c) against numpy in float64.

Given a compensated container and the checkpoint:
  1. the calibration tokens stored in the container run through
     tests/py/llama_numpy.py (float64), giving each linear layer's input
     gram G; h_i = G_ii + damp * mean(G_ii), the documented weighting;
  2. per layer with factors: E = W - What_codes (check_container.dequantize
     without the factors), the best rank-r correction in the h-weighted
     norm from numpy's SVD of E diag(sqrt h) (Eckart-Young), and the
     stored A B (IEEE half factors, read as float16);
  3. the stored correction must remove as much weighted error as numpy's
     optimum up to the factors' 16-bit rounding: its residual at most
     (1 + 1e-3) times numpy's residual plus the rounding's share, and
     within 1e-2 relative of numpy's correction itself unless the r-th and
     (r+1)-th singular values are within 1% (then the subspace is not
     determined and only the residual is checked);
  4. each layer's effective_bits counts 16 bits per factor entry, and the
     allocation's codes plus factors stay within avg_bits.
Usage: check_lowrank.py CONTAINER MODEL_DIR DAMP"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_container  # noqa: E402
from check_container import check, dequantize  # noqa: E402
from check_ldlq import Recorder  # noqa: E402
from llama_numpy import read_checkpoint  # noqa: E402


def main():
    path, model_dir, damp = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cfg, weights = read_checkpoint(model_dir)
    f = h5py.File(path, "r")
    rec = Recorder(cfg, weights)
    for ids in f["calibration/tokens"][...]:
        rec.logits([int(i) for i in ids])
    layers = worst_excess = 0
    factor_bits = weights_total = 0.0
    for name in f["layers"]:
        g = f["layers"][name]
        d_in, d_out = int(g.attrs["d_in"]), int(g.attrs["d_out"])
        weights_total += d_in * d_out
        if "lowrank_rank" not in g.attrs:
            continue
        r = int(g.attrs["lowrank_rank"])
        layers += 1
        factor_bits += 16.0 * r * (d_in + d_out)
        diag = np.diag(rec.grams[name])
        h = diag + damp * diag.mean()
        sh = np.sqrt(h / h.mean())
        w = weights[name + ".weight"].astype(np.float64)
        e = w - dequantize(g, factors=False)[0]
        u, s, vt = np.linalg.svd(e * sh, full_matrices=False)
        best = (u[:, :r] * s[:r]) @ vt[:r] / sh
        fa = g["lowrank_a"][...].view(np.float16).astype(np.float64)
        fb = g["lowrank_b"][...].view(np.float16).astype(np.float64)
        mine = fa @ fb
        res_best = np.linalg.norm((e - best) * sh)
        res_mine = np.linalg.norm((e - mine) * sh)
        # rounding each factor entry to half moves the product by about 2^-11 of it
        slack = 2.0 ** -10 * np.linalg.norm(best * sh)
        excess = (res_mine - res_best) / res_best
        worst_excess = max(worst_excess, excess)
        check(res_mine <= res_best * (1 + 1e-3) + slack,
              f"{name}: weighted residual {res_mine:.6g} vs numpy's optimum {res_best:.6g}")
        check(res_mine < np.linalg.norm(e * sh), f"{name}: the factors lower the weighted error")
        if s[r - 1] > 1.01 * s[r]:
            rel = np.linalg.norm(mine - best) / np.linalg.norm(best)
            check(rel <= 1e-2, f"{name}: correction within {rel:.2e} of numpy's")
        stored = float(g.attrs["effective_bits"])
        without = stored - 16.0 * r * (d_in + d_out) / (d_in * d_out)
        check(without > 0 and abs(stored * d_in * d_out - (without * d_in * d_out + 16.0 * r *
                                                           (d_in + d_out))) < 1e-6 * stored * d_in * d_out,
              f"{name}: effective_bits counts the factors")
    alloc = f["allocation"].attrs
    fb_attr = float(alloc["factor_bits"])
    check(abs(fb_attr - factor_bits / weights_total) <= 1e-12 * max(fb_attr, 1),
          f"factor_bits {fb_attr} = 16 r (d_in + d_out) summed / quantized weights")
    check(float(alloc["achieved_avg_bits"]) + fb_attr <= float(alloc["avg_bits"]) + 1e-9,
          "codes plus factors within avg_bits")
    check(layers > 0, "some layer has factors")
    print(f"lowrank: {layers} layers with factors ({fb_attr:.4f} bits per weight); stored "
          f"residuals at most {100 * worst_excess:.3f}% above numpy's optimum")
    sys.exit(1 if check_container.failed else 0)


if __name__ == "__main__":
    main()

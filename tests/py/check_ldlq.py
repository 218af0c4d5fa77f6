"""check_ldlq.py — raana's LDLQ codes ([quantize] ldlq, src/quant/ldlq.c)
against an independent numpy implementation in float64.

Given two containers of the same job, one with ldlq = false (PLAIN) and one
with ldlq = true (LDLQ), and the checkpoint:
  1. the calibration tokens stored in LDLQ run through tests/py/llama_numpy.py
     (float64), giving each linear layer's input gram G = sum x x^T;
  2. per layer (B >= 1): the target rows t_j = R (w_j - mu) (the rotation and
     the tricks read from the container, as check_container.py decodes them),
     H = R G R^T + damp * tr/d * I, U = the upper Cholesky factor of H^-1,
     and the feedback over rotated coordinates on PLAIN's grid (step = its
     rescale, RaBitQ-H's exact code), then the rescale ||t||^2 / <t, c - m>;
  3. the codes must equal raana's except for float ties (>= 99% per layer,
     99.8% overall), rescales of equal columns within 1e-4 relative (plus
     half a unit in the last place when stored in 16 bits); and
     the layer's output error on the calibration inputs must be lower with
     LDLQ's codes than with PLAIN's for most layers (the point of it).
Usage: check_ldlq.py PLAIN.h5 LDLQ.h5 MODEL_DIR DAMP"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_container  # noqa: E402
from check_container import check, side_rounding, side_vector, unpack_codes, unrotate  # noqa: E402
from llama_numpy import Llama, read_checkpoint  # noqa: E402


class Recorder(Llama):
    def __init__(self, cfg, weights):
        super().__init__(cfg, weights)
        self.grams = {}

    def linear(self, x, name):
        self.grams[name] = self.grams.get(name, 0) + x.T @ x
        return super().linear(x, name)


def parts(g):
    a = g.attrs
    d_in, cb, k = int(a["d_in"]), int(a["code_bits"]), int(a["rotation_k"])
    signs = np.unpackbits(g["signs"][...], axis=1, bitorder="little")[:, :d_in]
    s1, s2 = 1.0 - 2.0 * signs[0], 1.0 - 2.0 * signs[1]
    return dict(bits=float(a["bits"]), cb=cb, codes=unpack_codes(g["codes"][...], d_in, cb),
                rescale=side_vector(g, "rescale").astype(np.float64),
                rescale_rounding=side_rounding(g, "rescale"),
                u=unrotate(np.eye(d_in), s1, s2, k),  # w = rot @ u
                rs=side_vector(g, "row_scale").astype(np.float64) if "row_scale" in g
                else np.ones(d_in),
                mu=side_vector(g, "mu").astype(np.float64) if "mu" in g else np.zeros(d_in),
                held=set(int(c) for c in g["held_cols"][...]))


def ldlq(t, step, h, damp, cb, skip):
    d = h.shape[0]
    m, top = (2 ** cb - 1) / 2.0, 2 ** cb - 1
    hd = h + damp * np.trace(h) / d * np.eye(d)
    u = np.linalg.cholesky(np.linalg.inv(hd)).T  # upper, u.T @ u = H^-1
    w = t.copy()
    codes = np.zeros(t.shape, dtype=np.int64)
    live = ~skip
    for i in range(d):
        c = np.zeros(len(w))
        c[live] = np.clip(np.rint(w[live, i] / step[live] + m), 0, top)
        codes[:, i] = c
        e = np.where(live, (w[:, i] - step * (c - m)) / u[i, i], 0.0)
        w[:, i + 1:] -= np.outer(e, u[i, i + 1:])
    return codes


def main():
    plain_path, ldlq_path, model_dir, damp = sys.argv[1:5]
    damp = float(damp)
    cfg, weights = read_checkpoint(model_dir)
    plain, mine = h5py.File(plain_path, "r"), h5py.File(ldlq_path, "r")
    rec = Recorder(cfg, weights)
    for ids in mine["calibration/tokens"][...]:
        rec.logits([int(i) for i in ids])
    equal = total = better = layers = 0
    for name in mine["layers"]:
        a, b = parts(plain["layers"][name]), parts(mine["layers"][name])
        check(a["bits"] == b["bits"], f"{name}: the same bits in both containers")
        if a["bits"] < 1:
            check(np.array_equal(a["codes"], b["codes"]), f"{name}: below one bit, unchanged")
            continue
        w = weights[name + ".weight"].astype(np.float64)
        t = ((w - a["mu"]) / a["rs"]) @ a["u"].T
        h = a["u"] @ (a["rs"][:, None] * rec.grams[name] * a["rs"][None, :]) @ a["u"].T
        skip = np.zeros(len(t), dtype=bool)
        skip[list(a["held"])] = True
        skip |= ~(a["rescale"] > 0)
        codes = ldlq(t, a["rescale"], h, damp, a["cb"], skip)
        m = (2 ** a["cb"] - 1) / 2.0
        rows = ~skip
        same = (codes == b["codes"])[rows]
        frac = same.mean()
        equal += same.sum()
        total += same.size
        check(frac >= 0.99, f"{name}: {100 * frac:.2f}% of the codes equal numpy's LDLQ")
        q = codes - m
        alpha = np.einsum("ij,ij->i", t, t) / np.einsum("ij,ij->i", t, q)
        whole = rows & (codes == b["codes"]).all(axis=1) & (np.einsum("ij,ij->i", t, q) > 0)
        # beyond what 16-bit side vectors round away (nothing for float32)
        off = np.abs(alpha[whole] - b["rescale"][whole]) - b["rescale_rounding"][whole]
        rel = np.maximum(off, 0) / alpha[whole]
        check(rel.max(initial=0) <= 1e-4, f"{name}: rescales of equal columns, rel {rel.max(initial=0):.2e}")
        g = rec.grams[name]

        def out_err(p):
            e = (w - ((p["rescale"][:, None] * (p["codes"] - m)) @ p["u"] * p["rs"] + p["mu"]))[rows]
            return np.einsum("ij,jk,ik->", e, g, e)
        better += out_err(b) < out_err(a)
        layers += 1
    check(total > 0 and equal / total >= 0.998, f"{equal} of {total} codes equal numpy's LDLQ")
    check(better >= 0.9 * layers, f"LDLQ lowers the calibration output error of {better} of {layers} layers")
    print(f"ldlq: {equal} of {total} codes equal numpy's ({100 * equal / total:.3f}%); "
          f"calibration output error lower in {better} of {layers} layers")
    sys.exit(1 if check_container.failed else 0)


if __name__ == "__main__":
    main()

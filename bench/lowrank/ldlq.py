"""ldlq.py — issue 12: data-aware codes (LDLQ / GPTQ error feedback) in
raana's own format, measured on kjv-tiny against raana's codes.

raana stores row j of a layer as rot_j = alpha_j (c_j - m), c_j integer codes,
in a rotated basis: w_j = U^T rot_j * rs + mu (U: the signed Hadamard
rotation, rs/mu: the tricks). The layer's output on input x is then
rot_j . x_r + mu . x with x_r = U (rs * x). RaBitQ-H picks c_j to maximise the
cosine to the target row t_j = U ((w_j - mu) / rs) alone. LDLQ picks the same
kind of codes on the same grid (same alpha_j) but coordinate by coordinate,
feeding each rounding error forward through the Cholesky factor of
H = E[x_r x_r^T] (the calibration inputs' second moments in the rotated
basis), which minimises the output error on the calibration inputs rather than
the weight error. The container format does not change: only the codes.

Variants (one per experiment name):
  ldlq          alpha_j fixed at raana's rescale
  ldlq-unb      then alpha_j re-set to the unbiased |t|^2 / <t, c - m>
Each is evaluated with raana's own allocation (bits per layer as in raana's
container at A) and with the measured-error knapsack (experiment.py's
'measured'), seeds 0-2, held-out protocol of experiment.py.

Usage: HDF5_PLUGIN_PATH=build/hdf5-plugin /usr/bin/python3 bench/lowrank/ldlq.py
         BUILD_DIR WORK_DIR [variant ...]"""
import json
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import experiment as ex  # noqa: E402
from check_container import unpack_codes, unrotate  # noqa: E402

DAMP = float(os.environ.get("LDLQ_DAMP", "0.01"))
BLOCK = int(os.environ.get("LDLQ_BLOCK", "0"))  # >0: H kept on diagonal blocks only
DIAG = os.environ.get("LDLQ_DIAG", "0") == "1"  # only the inputs' per-channel second moments


def layer_parts(g):
    a = g.attrs
    d_in, d_out, cb, k = int(a["d_in"]), int(a["d_out"]), int(a["code_bits"]), int(a["rotation_k"])
    assert float(a["bits"]) >= 1
    codes = unpack_codes(g["codes"][...], int(a["n_kept"]), cb)
    signs = np.unpackbits(g["signs"][...], axis=1, bitorder="little")[:, :d_in]
    s1, s2 = 1.0 - 2.0 * signs[0], 1.0 - 2.0 * signs[1]
    u = unrotate(np.eye(d_in), s1, s2, k)  # row i = unrotate(e_i): w = rot @ u
    rs = g["row_scale"][...].astype(np.float64) if "row_scale" in g else np.ones(d_in)
    mu = g["mu"][...].astype(np.float64) if "mu" in g else np.zeros(d_in)
    held = [int(c) for c in g["held_cols"][...]]
    return dict(codes=codes, alpha=g["rescale"][...].astype(np.float64), cb=cb, u=u, rs=rs,
                mu=mu, held=held, d_out=d_out)


def ldlq_codes(t, alpha, h, cb):
    """Codes on the grid alpha_j (c - m), c in 0..2^cb-1, by GPTQ's error
    feedback with the inverse Hessian's Cholesky factor (rows of t at once)."""
    d = h.shape[0]
    m = (2 ** cb - 1) / 2.0
    if BLOCK:
        mask = (np.arange(d)[:, None] // BLOCK) == (np.arange(d)[None, :] // BLOCK)
        h = h * mask
    hd = h + DAMP * np.trace(h) / d * np.eye(d)
    hinv = np.linalg.cholesky(np.linalg.inv(hd)).T  # upper: hinv.T @ hinv = H^-1
    w = t.copy()
    codes = np.zeros(t.shape, dtype=np.int64)
    for i in range(d):
        c = np.clip(np.rint(w[:, i] / alpha + m), 0, 2 ** cb - 1)
        codes[:, i] = c
        err = (w[:, i] - alpha * (c - m)) / hinv[i, i]
        w[:, i + 1:] -= np.outer(err, hinv[i, i + 1:])
    return codes


def ldlq_weights(g, w_orig, s, variant):
    p = layer_parts(g)
    u, rs, mu = p["u"], p["rs"], p["mu"]
    m = (2 ** p["cb"] - 1) / 2.0
    t = ((w_orig - mu) / rs) @ u.T  # target rows in the rotated basis
    if DIAG:
        s = np.diag(np.diag(s))
    h = u @ (rs[:, None] * s * rs[None, :]) @ u.T
    alpha = p["alpha"]
    codes = ldlq_codes(t, alpha, h, p["cb"])
    q = codes - m
    if variant == "ldlq-unb":
        den = np.einsum("ij,ij->i", t, q)
        alpha = np.where(den > 0, np.einsum("ij,ij->i", t, t) / np.where(den > 0, den, 1), alpha)
    w = (alpha[:, None] * q) @ u * rs + mu
    for c in p["held"]:
        w[c] = w_orig[c]
    return w


def main():
    build, work = sys.argv[1:3]
    variants = sys.argv[3:] or ["ldlq"]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "results-ldlq.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    seeds = [int(x) for x in os.environ.get("SEEDS", "0,1,2").split(",")]
    for seed in seeds:
        ub = {b: ex.uniform(build, work, seed, b) for b in ex.CANDIDATES}
        own = {a: ex.quantize(build, os.path.join(work, f"a{a}_s{seed}.h5"), seed,
                              ["--set", f"quantize.avg_bits={a}"]) for a in ex.BUDGETS}
        names, cols, tokens = ex.allocation_of(own[ex.BUDGETS[0]])
        s, orig = ex.second_moments(tokens)
        w = {n: orig[n + ".weight"].astype(np.float64) for n in names}
        plain = {b: ex.layers_of(ub[b]) for b in ex.CANDIDATES}
        sizes = (cols["d_in"] * cols["d_out"]).astype(np.int64)
        for a in ex.BUDGETS:
            key = f"raana A={a} seed={seed}"
            if key not in results:
                results[key] = {"ratio": ex.ppl_of(ex.evaluate(build, "container", own[a]))
                                / ex.REF_PPL}
                print(key, f"{results[key]['ratio']:.4f}", flush=True)
        for var in variants:
            wb = {}
            for b in ex.CANDIDATES:
                with h5py.File(ub[b], "r") as f:
                    wb[b] = {n: ldlq_weights(f["layers"][n], w[n], s[n], var) for n in names}
            gain = [ex.out_err(w[n] - wb[2][n], s[n]) / ex.out_err(w[n] - plain[2][n], s[n])
                    for n in names]
            print(f"{var} seed {seed}: calibration output error at 2 bits, median ratio to "
                  f"raana's codes {np.median(gain):.3f}", flush=True)
            for a in ex.BUDGETS:
                theirs = [int(b) for b in ex.allocation_of(own[a])[1]["bits"]]
                opts = [[(b * int(sizes[i]), float(cols["grad_rms"][i]) *
                          ex.out_err(w[n] - wb[b][n], s[n]), b) for b in ex.CANDIDATES]
                        for i, n in enumerate(names)]
                measured, _ = ex.knapsack(sizes, opts, a * sizes.sum())
                for alloc, picks in (("same", theirs), ("measured", measured)):
                    key = f"{var}-{alloc} A={a} seed={seed}"
                    if key in results:
                        continue
                    outdir = os.path.join(work, "model-" + var)
                    ex.write_model(orig, {n: wb[b][n] for n, b in zip(names, picks)}, outdir)
                    ppl = ex.ppl_of(ex.evaluate(build, "compare", outdir))
                    results[key] = {"ratio": ppl / ex.REF_PPL, "picks": list(map(int, picks)),
                                    "code_bits": float(sum(b * z for b, z in zip(picks, sizes))
                                                       / sizes.sum())}
                    print(key, f"{results[key]['ratio']:.4f}", flush=True)
                    json.dump(results, open(path, "w"), indent=1)
    json.dump(results, open(path, "w"), indent=1)


if __name__ == "__main__":
    main()

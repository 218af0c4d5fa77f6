"""check_allocation.py — raana-mpi --allocate-only's JSON against an
independent recomputation: ||W after tricks|| with numpy from the
safetensors bytes (centralize: subtract the mean over output channels;
norm_col: zero the floor(rate * d_out) largest columns), the coefficients
c = grad_rms * x_rms * w_fro / sqrt(d_in), and the optimum of the
multiple-choice knapsack by a separate dynamic program, with the paper's
error model or the job's measured table (error_model = calibrated, whose
entries are checked against closed forms and independent measurements). The
allocation must meet the budget and reach that optimum.

Usage: check_allocation.py MODEL_DIR ALLOCATION_JSON [NORM_COL_RATE]"""
import json
import math
import os
import struct
import sys
from functools import reduce

import numpy as np


def tensors(model_dir):
    blob = open(os.path.join(model_dir, "model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        u = np.frombuffer(blob[8 + n + b:8 + n + e], dtype="<u2").astype(np.uint32) << 16
        out[name] = u.view(np.float32).reshape(info["shape"]).astype(np.float64)
    return out


def norm_after_tricks(w, rate):
    w = w - w.mean(axis=0, keepdims=True)  # rows of W^T are output channels
    held = int(math.floor(rate * w.shape[0]))
    if held:
        norms = (w * w).sum(axis=1)
        order = sorted(range(w.shape[0]), key=lambda j: (-norms[j], j))
        w[order[:held]] = 0
    return float(np.sqrt((w * w).sum()))


def error_model(b):
    return 2.0 ** -b if b >= 1 else 0.5 / math.sqrt(b)


def calibrated_model(cands, table):
    """f(b) from the job's measured table ([quantize] error_model =
    calibrated), after checking it against what is known without the
    quantizer: it falls with every width, the kept width 16 costs nothing,
    1-bit sign codes with RaBitQ's unbiased rescale on Gaussian columns lose
    sqrt(pi/2 - 1), and 0.5 / 0.75 bits cost 1.94x / 1.38x the 1-bit error
    (bench/RESULTS.md, kjv-tiny's layers)."""
    f = dict(zip(cands, table))
    assert all(a > b for a, b in zip(table, table[1:])), table
    assert f.get(16, 0.0) == 0.0
    if 1 in f:
        assert abs(f[1] - math.sqrt(math.pi / 2 - 1)) < 0.02, f[1]
        if 0.5 in f:
            assert 1.85 < f[0.5] / f[1] < 2.05, f[0.5] / f[1]
        if 0.75 in f:
            assert 1.32 < f[0.75] / f[1] < 1.45, f[0.75] / f[1]
    return lambda b: f[b]


def optimum(sizes, coefs, cands, avg):
    units = [[int(4 * b) * n for b in cands] for n in sizes]
    base = sum(u[0] for u in units)
    extra = [[x - u[0] for x in u] for u in units]
    g = reduce(math.gcd, [x for e in extra for x in e if x], 0) or 1
    budget = int(math.floor(4 * avg * sum(sizes) * (1 + 1e-12)))
    room = (budget - base) // g
    best = [0.0] * (room + 1)
    for l, e in enumerate(extra):
        best = [min(coefs[l] * error_model(cands[k]) + best[r - e[k] // g]
                    for k in range(len(cands)) if e[k] // g <= r) for r in range(room + 1)]
    return best[room]


def main():
    model_dir, path = sys.argv[1], sys.argv[2]
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.003
    got = json.load(open(path))
    ws = tensors(model_dir)
    bad = []
    sizes, coefs, bits = [], [], []
    for l in got["layers"]:
        w_fro = norm_after_tricks(ws[l["name"] + ".weight"], rate)
        if abs(l["w_fro"] - w_fro) > 1e-5 * w_fro:
            bad.append(f"{l['name']} w_fro {l['w_fro']} vs {w_fro}")
        coef = l["grad_rms"] * l["x_rms"] * l["w_fro"] / math.sqrt(l["d_in"])
        if abs(l["coef"] - coef) > 1e-12 * coef:
            bad.append(f"{l['name']} coef")
        sizes.append(l["d_in"] * l["d_out"])
        coefs.append(l["coef"])
        bits.append(l["bits"])
    a = got["allocation"]
    global error_model
    if "unit_errors" in a:
        error_model = calibrated_model(a["candidates"], a["unit_errors"])
    used = sum(n * b for n, b in zip(sizes, bits)) / sum(sizes)
    if used > a["avg_bits"] + 1e-12 or abs(used - a["achieved_avg_bits"]) > 1e-12:
        bad.append(f"budget: {used} vs target {a['avg_bits']}")
    cost = sum(c * error_model(b) for c, b in zip(coefs, bits))
    opt = optimum(sizes, coefs, a["candidates"], a["avg_bits"])
    if abs(cost - opt) > 1e-12 * opt or abs(a["modelled_error"] - cost) > 1e-12 * cost:
        bad.append(f"not optimal: {cost} vs {opt}")
    print("\n".join(bad) or f"allocation optimal: error {cost:.6g}, {used:.4f} bits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

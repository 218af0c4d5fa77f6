"""experiment.py — issue 12's experiments on kjv-tiny, in numpy around raana:
a measured error model for AllocateBits, low-rank compensation of the
quantization error weighted by the calibration inputs' second moments, and
the PCA trick, each compared with raana's own allocation at equal storage.

How (bench/RESULTS.md "More accuracy per stored bit" records the numbers):
  1. raana-mpi quantizes the fixture job with UNIFORM bits b for every
     candidate b (1,2,3,4,5,6,8) and seed s. A layer's codes depend only on
     (seed, layer name, b, its weights), so these containers hold every
     layer's dequantized weights W_b for every b (checked: equal to the
     layer in raana's mixed container).
  2. Calibration statistics: the container's calibration tokens (the fixture
     job's, 2 windows of 256) run through tests/py/llama_numpy.py's LLaMA
     (float64, original weights); per linear layer S = X^T X / T, T = 512.
  3. Per layer and choice: storage bits = b * size + 16 r (d_in + d_out)
     (two fp16 factors of rank r), and the error
       model:    c_l * 2^-b                       (raana's, c_l = s_l n_l)
       measured: s_l * || (W - W_b - A B) S^1/2 ||_F
     the RMS row norm of the layer's output error on the calibration inputs,
     times its gradient RMS s_l. (n_l 2^-b is the model of exactly that norm.)
     Low-rank: A B = best rank-r fit of E = W - W_b in the S-weighted norm,
     min ||(E - A B) S^1/2||_F -> SVD of E S^1/2 = U D V^T,
     A = U_r D_r, B = V_r^T S^-1/2 (S damped by 1e-2 * tr(S)/d I so that
     its inverse square root exists: T may be < d_in). "diag": S replaced
     by its diagonal. Factors are rounded to fp16 before the error counts.
     PCA trick: the top-k singular directions of W (fp16 factors) are held
     out and raana quantizes the remainder (a checkpoint with W - U_k D_k V_k^T
     quantized with uniform bits, as in 1).
  4. AllocateBits over all choices: the same exact multiple-choice knapsack
     (DP over the budget in units of the sizes' gcd).
  5. The chosen model is written as an F32 checkpoint and raana-eval
     --compare gives its held-out perplexity (fixture protocol, N = 256);
     ratio = ppl / 31.921801 (reference.json).

Usage: HDF5_PLUGIN_PATH=build/hdf5-plugin /usr/bin/python3 bench/lowrank/experiment.py
         BUILD_DIR WORK_DIR [experiment ...]"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "py"))
from check_container import dequantize  # noqa: E402  (the numpy decoder)
from llama_numpy import Llama, read_checkpoint, write_safetensors_f32  # noqa: E402

FIXTURE = os.path.join(SRC, "tests", "data", "kjv-tiny")
JOB = os.path.join(SRC, "jobs", "kjv-tiny.ini")
REF_PPL = 31.921801
CANDIDATES = [1, 2, 3, 4, 5, 6, 8]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl="self,vader", OPENBLAS_NUM_THREADS="1")


def run(cmd):
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{cmd}: exit {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def quantize(build, out, seed, extra, model=None):
    if os.path.exists(out):
        return out
    cmd = [os.path.join(build, "raana-mpi"), JOB, "--set", f"output.path={out}",
           "--set", f"quantize.seed={seed}"] + extra
    if model:
        cmd += ["--set", f"model.path={model}"]
    run(cmd)
    return out


def uniform(build, work, seed, b, model=None, tag=""):
    return quantize(build, os.path.join(work, f"u{b}{tag}_s{seed}.h5"), seed,
                    ["--set", f"quantize.bits={b}", "--set", f"quantize.avg_bits={b}"], model)


def layers_of(path):
    """name -> dequantized weight [d_out, d_in] (float64)."""
    with h5py.File(path, "r") as f:
        return {name: dequantize(g)[0] for name, g in f["layers"].items()}


def means_of(path):
    """name -> the centralize trick's mu (length d_in; zeros without it)."""
    with h5py.File(path, "r") as f:
        return {n: g["mu"][...].astype(np.float64) if "mu" in g else np.zeros(int(g.attrs["d_in"]))
                for n, g in f["layers"].items()}


def shrink(w, what, mu, s):
    """Data-aware rescale of each output channel's quantized part q = What - mu:
    alpha_j = <w_j - mu, q_j>_S / <q_j, q_j>_S (S-weighted least squares; free:
    it changes the stored rescale). Held-out columns have q = w - mu: alpha 1."""
    t, q = w - mu, what - mu
    num = np.einsum("ij,jk,ik->i", t, s, q)
    den = np.einsum("ij,jk,ik->i", q, s, q)
    alpha = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    return mu + alpha[:, None] * q


def allocation_of(path):
    with h5py.File(path, "r") as f:
        a = f["allocation"]
        names = [n.decode() for n in a["name"][...]]
        cols = {k: a[k][...] for k in ("coef", "grad_rms", "bits", "d_in", "d_out")}
        tokens = f["calibration/tokens"][...]
    return names, cols, tokens


class Recorder(Llama):
    """The numpy LLaMA, keeping S = X^T X (summed) of every linear's input."""

    def __init__(self, cfg, weights):
        super().__init__(cfg, weights)
        self.sums, self.rows = {}, 0

    def linear(self, x, name):
        s = x.T @ x
        self.sums[name] = self.sums.get(name, 0) + s
        return super().linear(x, name)


def second_moments(tokens):
    cfg, w = read_checkpoint(FIXTURE)
    rec = Recorder(cfg, w)
    for ids in tokens:
        rec.logits(list(ids))
    t = tokens.size
    return {name + "": s / t for name, s in rec.sums.items()}, w


def fp16(x):
    return x.astype(np.float16).astype(np.float64)


def sqrt_and_inv(s, diag):
    d = s.shape[0]
    lam = 1e-2 * np.trace(s) / d
    if diag:
        v = np.diag(s) + lam
        return np.diag(np.sqrt(v)), np.diag(1 / np.sqrt(v))
    ev, q = np.linalg.eigh(s + lam * np.eye(d))
    return (q * np.sqrt(ev)) @ q.T, (q / np.sqrt(ev)) @ q.T


def lowrank_fit(e, s, rank, diag):
    """fp16 factors (A [d_out, r], B [r, d_in]) of the S-weighted best rank-r fit of e."""
    half, inv_half = sqrt_and_inv(s, diag)
    u, d, vt = np.linalg.svd(e @ half, full_matrices=False)
    return fp16(u[:, :rank] * d[:rank]), fp16(vt[:rank] @ inv_half)


def out_err(e, s):
    return float(np.sqrt(max(np.einsum("ij,jk,ik->", e, s, e), 0)))


def knapsack(sizes, options, budget_bits):
    """options[l] = [(storage_bits, error, payload)]; exact min of total
    error with total storage <= budget_bits. Returns the chosen payloads."""
    g = 0
    for opts in options:
        for bits, _, _ in opts:
            g = np.gcd(g, int(bits))
    cap = int(budget_bits // g)
    inf = float("inf")
    best = np.full(cap + 1, inf)
    best[0] = 0.0
    choice = []
    for opts in options:
        new = np.full(cap + 1, inf)
        arg = np.full(cap + 1, -1, dtype=np.int64)
        for k, (bits, err, _) in enumerate(opts):
            w = int(bits) // g
            if w > cap:
                continue
            cand = np.full(cap + 1, inf)
            cand[w:] = best[: cap + 1 - w] + err
            better = cand < new
            new[better], arg[better] = cand[better], k
        choice.append(arg)
        best = new
    c = int(np.argmin(best))
    total = best[c]
    picks = []
    for arg, opts in zip(reversed(choice), reversed(options)):
        k = int(arg[c])
        picks.append(opts[k][2])
        c -= int(opts[k][0]) // g
    return list(reversed(picks)), total


def write_model(orig, weights, outdir):
    os.makedirs(outdir, exist_ok=True)
    tensors = dict(orig)
    for name, w in weights.items():
        tensors[name + ".weight"] = w.astype(np.float32)
    write_safetensors_f32(os.path.join(outdir, "model.safetensors"), tensors)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "generation_config.json"):
        shutil.copy(os.path.join(FIXTURE, f), outdir)


def evaluate(build, what, path, kl=False):
    cmd = [os.path.join(build, "raana-eval"), "--text", os.path.join(FIXTURE, "heldout.txt"),
           "--seq-len", "256", "--json", "--quiet"]
    cmd += ["--container", path] if what == "container" else ["--compare", path]
    if kl:
        cmd += ["--model", FIXTURE]
    out = json.loads(run(cmd))
    return out


def ppl_of(result):
    q = result.get("quantized") or result
    return q["perplexity"]


# ---- the experiments ---------------------------------------------------------
RANKS = [0, 1, 2, 4, 8, 16]
PCA_K = [2, 8]
BUDGETS = [2.5, 3.3]


def pca_checkpoint(work, orig, names, k):
    """A checkpoint whose quantized layers hold W - P_k (P_k: top-k SVD of W, fp16)."""
    out = os.path.join(work, f"pca{k}")
    held = {}
    tensors = dict(orig)
    for name in names:
        w = orig[name + ".weight"].astype(np.float64)
        u, d, vt = np.linalg.svd(w, full_matrices=False)
        p = fp16(u[:, :k] * d[:k]) @ fp16(vt[:k])
        held[name] = p
        tensors[name + ".weight"] = (w - p).astype(np.float32)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        os.makedirs(out, exist_ok=True)
        write_safetensors_f32(os.path.join(out, "model.safetensors"), tensors)
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "generation_config.json"):
            shutil.copy(os.path.join(FIXTURE, f), out)
    return out, held


def options_for(name, size, d_in, d_out, w, wb, s, grad, coef, kinds, pca):
    """[(storage bits, error, payload)] of one layer; payload = (b, kind, r)."""
    opts = []
    for b in CANDIDATES:
        e = w - wb[b][name]
        if "model" in kinds:  # raana's model; a lever scales it by its measured gain
            opts.append((b * size, coef * 2.0 ** -b, (b, "none", 0)))
            base = out_err(e, s)
            for kind in ("lr", "lrdiag"):
                if kind not in kinds:
                    continue
                a_, b_ = lowrank_fit(e, s, max(RANKS), kind == "lrdiag")
                for r in RANKS[1:]:
                    res = e - a_[:, :r] @ b_[:r]
                    opts.append((b * size + 16 * r * (d_in + d_out),
                                 coef * 2.0 ** -b * out_err(res, s) / base, (b, kind, r)))
            continue
        if "mplain" in kinds:  # the measured weight error, isotropic inputs
            err = np.linalg.norm(e) * np.sqrt(np.trace(s) / d_in)
        elif "mdiag" in kinds:  # inputs' per-channel second moments only
            err = out_err(e, np.diag(np.diag(s)))
        else:
            err = out_err(e, s)
        opts.append((b * size, grad * err, (b, "none", 0)))
        for kind in ("lr", "lrdiag"):
            if kind not in kinds:
                continue
            a_, b_ = lowrank_fit(e, s, max(RANKS), kind == "lrdiag")
            for r in RANKS[1:]:
                if r > min(d_in, d_out):
                    continue
                res = e - a_[:, :r] @ b_[:r]
                opts.append((b * size + 16 * r * (d_in + d_out), grad * out_err(res, s),
                             (b, kind, r)))
        if "pca" in kinds:
            for k in PCA_K:
                res = w - (pca[k][0][b][name] + pca[k][1][name])
                opts.append((b * size + 16 * k * (d_in + d_out), grad * out_err(res, s),
                             (b, "pca", k)))
    return opts


def build_weights(names, picks, w, wb, s, pca):
    out = {}
    for name, (b, kind, r) in zip(names, picks):
        if kind == "none":
            out[name] = wb[b][name]
        elif kind in ("lr", "lrdiag"):
            a_, b_ = lowrank_fit(w[name] - wb[b][name], s[name], r, kind == "lrdiag")
            out[name] = wb[b][name] + a_ @ b_
        else:
            out[name] = pca[r][0][b][name] + pca[r][1][name]
    return out


def one_seed(build, work, seed, experiments, results, path):
    wb = {b: layers_of(uniform(build, work, seed, b)) for b in CANDIDATES}
    own = {a: quantize(build, os.path.join(work, f"a{a}_s{seed}.h5"), seed,
                       ["--set", f"quantize.avg_bits={a}"]) for a in BUDGETS}
    names, cols, tokens = allocation_of(own[BUDGETS[0]])
    s, orig = second_moments(tokens)
    w = {n: orig[n + ".weight"].astype(np.float64) for n in names}
    # the codes of a layer do not depend on the allocation
    mixed = layers_of(own[BUDGETS[0]])
    for i, n in enumerate(names):
        b = int(cols["bits"][i])
        assert np.array_equal(mixed[n], wb[b][n]), n
    pca = {}
    if any("pca" in e for e in experiments):
        for k in PCA_K:
            model, held = pca_checkpoint(work, orig, names, k)
            pca[k] = ({b: layers_of(uniform(build, work, seed, b, model, f"pca{k}"))
                       for b in CANDIDATES}, held)
    sizes = (cols["d_in"] * cols["d_out"]).astype(np.int64)
    mu = means_of(own[BUDGETS[0]])
    plain_wb = wb
    for exp in experiments:
        kinds = set(exp.split("+"))
        wb = plain_wb
        if "shrink" in kinds:
            wb = {b: {n: shrink(w[n], plain_wb[b][n], mu[n], s[n]) for n in names}
                  for b in CANDIDATES}
        opts = [options_for(n, int(sizes[i]), int(cols["d_in"][i]), int(cols["d_out"][i]), w[n],
                            wb, s[n], float(cols["grad_rms"][i]), float(cols["coef"][i]),
                            kinds, pca) for i, n in enumerate(names)]
        for a in BUDGETS:
            key = f"{exp} A={a} seed={seed}"
            if key in results:
                continue
            if exp == "model":  # the knapsack here on raana's model: raana's own allocation?
                picks, _ = knapsack(sizes, opts, a * sizes.sum())
                theirs = [int(b) for b in allocation_of(own[a])[1]["bits"]]
                print(f"{key}: same allocation as raana: {[p[0] for p in picks] == theirs}")
                continue
            if exp == "raana":
                res = evaluate(build, "container", own[a])
                picks = [(int(b), "none", 0) for b in allocation_of(own[a])[1]["bits"]]
            else:
                picks, _ = knapsack(sizes, opts, a * sizes.sum())
                same = [r for k, r in results.items() if k.endswith(f"seed={seed}")
                        and r["picks"] == [list(p) for p in picks] and ("shrink" in k) == (wb is not plain_wb)]
                if same:  # the same weights were evaluated already
                    res = {"quantized": {"perplexity": same[0]["ppl"]}}
                else:
                    outdir = os.path.join(work, "model-" + exp)
                    write_model(orig, build_weights(names, picks, w, wb, s, pca), outdir)
                    res = evaluate(build, "compare", outdir)
            total = sizes.sum()
            code = sum(p[0] * sz for p, sz in zip(picks, sizes)) / total
            fac = sum(16 * p[2] * (cols["d_in"][i] + cols["d_out"][i])
                      for i, p in enumerate(picks) if p[1] != "none") / total
            results[key] = {"ppl": ppl_of(res), "ratio": ppl_of(res) / REF_PPL,
                            "code_bits": float(code), "factor_bits": float(fac),
                            "picks": [list(p) for p in picks]}
            print(f"{key}: ratio {results[key]['ratio']:.4f} code bits {code:.3f} "
                  f"factor bits {fac:.3f}", flush=True)
            with open(path, "w") as f:
                json.dump(results, f, indent=1)


def allocation_gain(build, work):
    """AllocateBits (candidates 1..8 of the fixture job) vs uniform bits at 2, 3, 4."""
    path = os.path.join(work, "gain.json")
    res = json.load(open(path)) if os.path.exists(path) else {}
    seeds = [int(x) for x in os.environ.get("SEEDS", "0,1,2").split(",")]
    for b in (2, 3, 4):
        for seed in seeds:
            for kind, out in (("uniform", uniform(build, work, seed, b)),
                              ("allocated", quantize(build, os.path.join(work, f"a{b}_s{seed}.h5"),
                                                     seed, ["--set", f"quantize.avg_bits={b}"]))):
                key = f"{kind} {b} seed={seed}"
                if key not in res:
                    res[key] = ppl_of(evaluate(build, "container", out)) / REF_PPL
                    print(f"{key}: ratio {res[key]:.4f}", flush=True)
                    json.dump(res, open(path, "w"), indent=1)
    print(f"| bits | uniform (seeds {seeds}) | AllocateBits (seeds {seeds}) | medians | gain |")
    print("|---|---|---|---|---|")
    for b in (2, 3, 4):
        u = [res[f"uniform {b} seed={s}"] for s in seeds]
        a = [res[f"allocated {b} seed={s}"] for s in seeds]
        print(f"| {b} | {', '.join(f'{x:.4f}' for x in u)} | {', '.join(f'{x:.4f}' for x in a)} | "
              f"{np.median(u):.4f} -> {np.median(a):.4f} | "
              f"{100 * (np.median(u) - np.median(a)) / (np.median(u) - 1):.1f}% of the excess |")


def main():
    build, work = sys.argv[1:3]
    if sys.argv[3:] == ["gain"]:
        return allocation_gain(build, work)
    experiments = sys.argv[3:] or ["raana", "measured", "measured+lr", "measured+lrdiag",
                                   "measured+pca"]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "results-" + "-".join(experiments) + ".json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    seeds = [int(x) for x in os.environ.get("SEEDS", "0,1,2").split(",")]
    for seed in seeds:
        one_seed(build, work, seed, experiments, results, path)
    print(f"| experiment | A | ratios (seeds {seeds}) | median | code bits | factor bits |")
    print("|---|---|---|---|---|---|")
    for exp in experiments:
        for a in BUDGETS:
            if exp == "model":
                continue
            rs = [results[f"{exp} A={a} seed={s}"] for s in seeds]
            ratios = [r["ratio"] for r in rs]
            print(f"| {exp} | {a} | {', '.join(f'{x:.4f}' for x in ratios)} | "
                  f"{np.median(ratios):.4f} | {np.mean([r['code_bits'] for r in rs]):.3f} | "
                  f"{np.mean([r['factor_bits'] for r in rs]):.3f} |")


if __name__ == "__main__":
    main()

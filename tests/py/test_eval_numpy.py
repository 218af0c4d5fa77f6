"""test_eval_numpy.py — raana-eval against an independent numpy
implementation of the model (llama_numpy.py, float64):
1. llama_numpy itself against reference.json (PyTorch): forward_check's last
   logits, per-position logit norms and mean loss, calibration_check's loss;
2. one container of jobs/kjv-tiny.ini: numpy runs the original checkpoint
   and the quantized model (dequantized layers from `raana-inspect
   --dequantize`, every other tensor from the checkpoint) on 12 windows of
   256 held-out tokens; raana-eval --json (both perplexities and their
   standard errors, mean KL) must agree to 1e-4 relative, p99 and max KL to
   1e-3, top-1 agreement to 2 tokens in 3060 — with the quantized side given
   as --container (the container alone) and as --compare (a checkpoint of
   the numpy side's weights, F32);
3. --stride: 5 overlapping windows (stride 100) of one model, perplexity and
   scored tokens against numpy's sliding-window protocol.

Usage: test_eval_numpy.py RAANA_EVAL RAANA_MPI RAANA_INSPECT TOKENIZE_LINES SOURCE_DIR MPIEXEC"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

for key, value in (("OMPI_ALLOW_RUN_AS_ROOT", "1"), ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                   ("OMPI_MCA_btl", "self,vader"), ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
                   ("OPENBLAS_NUM_THREADS", "1")):
    os.environ[key] = value

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_numpy as L  # noqa: E402

eval_bin, mpi_bin, inspect_bin, tokenize_bin, src, mpiexec = sys.argv[1:7]
fixture = os.path.join(src, "tests", "data", "kjv-tiny")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


ref = json.load(open(os.path.join(fixture, "reference.json")))
cfg, weights = L.read_checkpoint(fixture)
original = L.Llama(cfg, weights)

# 1. the numpy model against PyTorch's numbers
fc = ref["forward_check"]
lg = original.logits(fc["input_ids"])
check(np.abs(lg[-1] - fc["last_logits"]).max() < 1e-4, "numpy last_logits vs reference")
norms = np.linalg.norm(lg, axis=-1)
check(np.max(np.abs(norms / fc["logits_l2_norm_per_position"] - 1)) < 1e-4, "numpy logit norms")
lp = L.log_softmax(lg)
loss = -lp[np.arange(63), fc["input_ids"][1:]].mean()
check(rel(loss, fc["mean_loss"]) < 1e-5, f"numpy forward_check loss {loss}")
cc = ref["calibration_check"]
lp = L.log_softmax(original.logits(cc["input_ids"]))
loss = -lp[np.arange(len(cc["input_ids"]) - 1), cc["input_ids"][1:]].mean()
check(rel(loss, cc["loss"]) < 1e-5, f"numpy calibration_check loss {loss}")

tmp = tempfile.mkdtemp()
try:
    # the held-out stream: bos + the whole text as one sequence
    with open(os.path.join(tmp, "lines.json"), "w") as f:
        json.dump([open(os.path.join(fixture, "heldout.txt"), encoding="utf-8").read()], f)
    stream = [1] + json.loads(run(tokenize_bin, fixture, os.path.join(tmp, "lines.json")))[0]
    check(len(stream) == ref["heldout_ppl"]["stream_tokens"], "stream length")
    check(stream[:64] == fc["input_ids"], "stream starts as forward_check's input_ids")

    # 2. one container: quantized weights = dequantized layers + checkpoint
    container = os.path.join(tmp, "q.h5")
    run(mpiexec, "-n", "2", mpi_bin, "--set", "output.path=" + container,
        os.path.join(src, "jobs", "kjv-tiny.ini"))
    layers = [l.split()[0] for l in run(inspect_bin, container, "--layers").splitlines()
              if l.startswith("model.layers.")]
    check(len(layers) == 28, f"{len(layers)} quantized layers")
    qweights = dict(weights)
    for name in layers:
        out = os.path.join(tmp, "w.f32")
        run(inspect_bin, container, "--dequantize", name, out)
        shape = weights[name + ".weight"].shape
        qweights[name + ".weight"] = np.fromfile(out, dtype="<f4").reshape(shape)
    quantized = L.Llama(cfg, qweights)
    wins = L.windows(stream, 256, 256, 12)
    nll, kl, agree = L.per_token([original, quantized], wins)
    want = {"original": L.summary(nll[0]), "quantized": L.summary(nll[1]),
            "kl": {"mean": float(kl.mean()), "p99": float(np.percentile(kl, 99)),
                   "max": float(kl.max())},
            "top1_agreement": float(agree.mean())}
    print(f"numpy: {json.dumps(want)}")

    compare_dir = os.path.join(tmp, "compare")
    os.mkdir(compare_dir)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(fixture, name), compare_dir)
    L.write_safetensors_f32(os.path.join(compare_dir, "model.safetensors"), qweights)

    for side in (["--container", container], ["--compare", compare_dir]):
        got = json.loads(run(mpiexec, "-n", "2", eval_bin, "--model", fixture, *side, "--text",
                             os.path.join(fixture, "heldout.txt"), "--seq-len", "256",
                             "--max-windows", "12", "--json", "--quiet"))
        what = side[0]
        print(f"raana-eval {what}: {json.dumps(got)}")
        check(got["windows"] == 12 and got["scored_tokens"] == len(kl) == 3060,
              f"{what}: windows/scored tokens")
        for s in ("original", "quantized"):
            for key in ("perplexity", "perplexity_se", "mean_nll"):
                check(rel(got[s][key], want[s][key]) < 1e-4,
                      f"{what}: {s} {key} {got[s][key]} vs numpy {want[s][key]}")
        check(rel(got["kl"]["mean"], want["kl"]["mean"]) < 1e-4,
              f"{what}: KL mean {got['kl']['mean']} vs numpy {want['kl']['mean']}")
        for key in ("p99", "max"):
            check(rel(got["kl"][key], want["kl"][key]) < 1e-3,
                  f"{what}: KL {key} {got['kl'][key]} vs numpy {want['kl'][key]}")
        check(abs(got["top1_agreement"] - want["top1_agreement"]) <= 2 / 3060,
              f"{what}: top-1 {got['top1_agreement']} vs numpy {want['top1_agreement']}")
        ratio = want["quantized"]["perplexity"] / want["original"]["perplexity"]
        check(rel(got["ppl_ratio"], ratio) < 1e-4, f"{what}: ppl ratio")
        check(abs(got["ln_ppl_ratio"] - np.log(ratio)) < 1e-5, f"{what}: ln ppl ratio")

    # 3. overlapping windows: stride 100, 5 windows of 256
    wins = L.windows(stream, 256, 100, 5)
    nll, _, _ = L.per_token([quantized], wins)
    want = L.summary(nll[0])
    got = json.loads(run(mpiexec, "-n", "2", eval_bin, "--compare", compare_dir, "--text",
                         os.path.join(fixture, "heldout.txt"), "--seq-len=256", "--stride=100",
                         "--max-windows=5", "--json", "--quiet"))
    check(got["scored_tokens"] == len(nll[0]) == 255 + 4 * 100, "stride: scored tokens")
    check("original" not in got and "kl" not in got, "stride: only the quantized side")
    check(rel(got["quantized"]["perplexity"], want["perplexity"]) < 1e-4,
          f"stride: perplexity {got['quantized']['perplexity']} vs numpy {want['perplexity']}")
finally:
    shutil.rmtree(tmp)

print(f"test_eval_numpy.py: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

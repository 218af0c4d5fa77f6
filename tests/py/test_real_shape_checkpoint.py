"""test_real_shape_checkpoint.py — bench/make_real_shape_checkpoint.py writes what
it promises: the published dimensions of Llama-2-7B, Llama-2-70B and Llama-3.1-405B
in config.json; with tiny overridden dimensions and 1 block, sharded BF16 safetensors
whose index lists every tensor once with the shapes a LLaMA of that config has
(computed here independently), contiguous offsets and sizes, heavy-tailed columns of
variance 1/d_in with the same few outlier hidden channels in q_proj and gate_proj;
and `raana-mpi --dry-run` accepts the checkpoint and counts its parameters and layer
shapes right. Usage: test_real_shape_checkpoint.py RAANA_MPI SOURCE_DIR"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np

bin_, src = sys.argv[1], sys.argv[2]
tool = os.path.join(src, "bench", "make_real_shape_checkpoint.py")
failed = passed = 0


def check(cond, what):
    global failed, passed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


# Published dimensions: hidden, intermediate, heads, kv heads, vocab, rope theta.
PUBLISHED = {"7b": (4096, 11008, 32, 32, 32000, 10000.0),
             "70b": (8192, 28672, 64, 8, 32000, 10000.0),
             "405b": (16384, 53248, 128, 8, 128256, 500000.0)}


def gen(out, *args):
    r = subprocess.run([sys.executable, tool, out, *args], capture_output=True, text=True)
    check(r.returncode == 0, f"generator {args}: rc {r.returncode} {r.stderr}")


def read_shards(d):
    index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    tensors, total = {}, 0
    for fname in sorted(set(index["weight_map"].values())):
        path = os.path.join(d, fname)
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        end = 0
        for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            check(e["dtype"] == "BF16", f"{name} dtype {e['dtype']}")
            check(e["data_offsets"][0] == end, f"{name} offsets not contiguous")
            check(e["data_offsets"][1] - end == 2 * int(np.prod(e["shape"])), f"{name} size")
            check(index["weight_map"].get(name) == fname, f"{name} not mapped to {fname}")
            end = e["data_offsets"][1]
            tensors[name] = (path, 8 + n, e)
        check(os.path.getsize(path) == 8 + n + end, f"{fname} file size")
        total += end
    check(index["metadata"]["total_size"] == total, "index total_size")
    check(len(tensors) == len(index["weight_map"]), "index lists a tensor no shard has")
    return tensors


def load(entry):
    path, base, e = entry
    with open(path, "rb") as f:
        f.seek(base + e["data_offsets"][0])
        raw = np.frombuffer(f.read(e["data_offsets"][1] - e["data_offsets"][0]), "<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(e["shape"])


def expected_shapes(h, inter, heads, kv, vocab):
    hd = h // heads
    p = "model.layers.0."
    return {"model.embed_tokens.weight": [vocab, h], "lm_head.weight": [vocab, h],
            "model.norm.weight": [h], p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
            p + "self_attn.q_proj.weight": [heads * hd, h],
            p + "self_attn.k_proj.weight": [kv * hd, h],
            p + "self_attn.v_proj.weight": [kv * hd, h],
            p + "self_attn.o_proj.weight": [h, heads * hd],
            p + "mlp.gate_proj.weight": [inter, h], p + "mlp.up_proj.weight": [inter, h],
            p + "mlp.down_proj.weight": [h, inter]}


def column_checks(tensors, h):
    q = load(tensors["model.layers.0.self_attn.q_proj.weight"])
    g = load(tensors["model.layers.0.mlp.gate_proj.weight"])
    rq, rg = np.sqrt((q ** 2).mean(0)), np.sqrt((g ** 2).mean(0))
    top_q, top_g = set(np.argsort(rq)[-4:]), set(np.argsort(rg)[-4:])
    check(top_q == top_g, f"outlier channels differ: {top_q} vs {top_g}")
    check(np.sort(rq)[-4] / np.median(rq) > 8, "outlier columns not prominent")
    rest = np.delete(g, sorted(top_g), axis=1).ravel()
    check(abs(rest.var() * h - 1) < 0.2, f"column variance {rest.var() * h:.3f} / d_in")
    kurt = ((rest - rest.mean()) ** 4).mean() / rest.var() ** 2 - 3
    check(kurt > 1.0, f"excess kurtosis {kurt:.2f}: not heavy-tailed")


def dry_run(d, h, inter, heads, kv, vocab):
    job = os.path.join(d, "job.ini")
    with open(job, "w") as f:
        f.write(f"[model]\npath = {d}\n[calibration]\nsource = text\ntext_file = "
                f"{src}/tests/data/kjv-tiny/calib.txt\nn_samples = 1\nseq_len = 32\n"
                f"[quantize]\navg_bits = 3\nbits = 2, 3, 4\n[output]\npath = {d}/out.h5\n")
    r = subprocess.run([bin_, "--dry-run", job], capture_output=True, text=True)
    check(r.returncode == 0, f"dry run rc {r.returncode}: {r.stderr}")
    hd = h // heads
    block = 2 * h + h * heads * hd * 2 + 2 * h * kv * hd + 3 * h * inter
    linear = block - 2 * h
    total = block + 2 * vocab * h + h
    want = f"parameters: {total} total, {block} per block, {linear} to quantize in 7 linear"
    check(want in r.stdout, f"dry run: expected '{want}' in\n{r.stdout}")
    check(f"heads {heads} (kv {kv}, dim {hd}), vocab {vocab}" in r.stdout, "dry run: heads")
    rows = {m[0]: (int(m[1]), int(m[2])) for m in
            re.findall(r"model\.layers\.0\.(\S+)\s+(\d+)\s+(\d+)", r.stdout)}
    shapes = expected_shapes(h, inter, heads, kv, vocab)
    for name, (d_in, d_out) in rows.items():
        check(shapes["model.layers.0." + name + ".weight"] == [d_out, d_in], f"row {name}")
    check(len(rows) == 7, f"dry run lists {len(rows)} layers")


with tempfile.TemporaryDirectory(prefix="raana-real-shape-") as tmp:
    for shape, (h, inter, heads, kv, vocab, theta) in PUBLISHED.items():
        d = os.path.join(tmp, "cfg-" + shape)
        gen(d, shape, "80", "--config-only")
        c = json.load(open(os.path.join(d, "config.json")))
        got = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
               c["num_key_value_heads"], c["rope_theta"], c["num_hidden_layers"])
        check(got == (h, inter, heads, kv, theta, 80), f"{shape}: config {got}")
        check(c["vocab_size"] == 2048, f"{shape}: default vocabulary is the tokenizer's")
        check(os.path.exists(os.path.join(d, "tokenizer.json")), f"{shape}: tokenizer copied")
        check((c["rope_scaling"] or {}).get("rope_type") == ("llama3" if shape == "405b" else None),
              f"{shape}: rope_scaling {c['rope_scaling']}")
        gen(d + "-real", shape, "1", "--config-only", "--vocab", "real")
        c = json.load(open(os.path.join(d + "-real", "config.json")))
        check(c["vocab_size"] == vocab, f"{shape}: --vocab real gives {c['vocab_size']}")

    for shape, (h, inter, heads, kv) in {"7b": (64, 176, 4, 4), "70b": (64, 160, 8, 2),
                                         "405b": (128, 320, 16, 2)}.items():
        d = os.path.join(tmp, "tiny-" + shape)
        gen(d, shape, "1", "--hidden", str(h), "--intermediate", str(inter), "--heads",
            str(heads), "--kv-heads", str(kv), "--shard-gib", "0.00005")
        tensors = read_shards(d)
        shapes = expected_shapes(h, inter, heads, kv, 2048)
        check(set(tensors) == set(shapes), f"{shape}: tensor names {sorted(tensors)}")
        for name, want in shapes.items():
            check(name in tensors and tensors[name][2]["shape"] == want, f"{shape}: {name}")
        n_files = len(set(p for p, _, _ in tensors.values()))
        check(n_files >= 3, f"{shape}: only {n_files} shards")
        column_checks(tensors, h)
        dry_run(d, h, inter, heads, kv, 2048)

    # Mixtral-8x7B: the published shape (config only), and a tiny instance whose
    # names, shapes and dry-run parameter counts follow from the shape in closed form
    d = os.path.join(tmp, "cfg-8x7b")
    gen(d, "8x7b", "32", "--config-only")
    c = json.load(open(os.path.join(d, "config.json")))
    got = (c["model_type"], c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
           c["num_key_value_heads"], c["num_local_experts"], c["num_experts_per_tok"],
           c["rope_theta"], c["num_hidden_layers"])
    check(got == ("mixtral", 4096, 14336, 32, 8, 8, 2, 1000000.0, 32), f"8x7b: config {got}")
    h, inter, heads, kv, n_exp = 64, 96, 4, 2, 3
    d = os.path.join(tmp, "tiny-8x7b")
    gen(d, "8x7b", "2", "--hidden", str(h), "--intermediate", str(inter), "--heads", str(heads),
        "--kv-heads", str(kv), "--experts", str(n_exp), "--shard-gib", "0.00005")
    tensors = read_shards(d)
    hd = h // heads
    want = {"model.embed_tokens.weight": [2048, h], "model.norm.weight": [h],
            "lm_head.weight": [2048, h]}
    for b in range(2):
        p = f"model.layers.{b}."
        want.update({p + "self_attn.q_proj.weight": [heads * hd, h],
                     p + "self_attn.k_proj.weight": [kv * hd, h],
                     p + "self_attn.v_proj.weight": [kv * hd, h],
                     p + "self_attn.o_proj.weight": [h, heads * hd],
                     p + "block_sparse_moe.gate.weight": [n_exp, h],
                     p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h]})
        for e in range(n_exp):
            q = f"{p}block_sparse_moe.experts.{e}."
            want.update({q + "w1.weight": [inter, h], q + "w3.weight": [inter, h],
                         q + "w2.weight": [h, inter]})
    check({n: t[2]["shape"] for n, t in tensors.items()} == want, "8x7b: tensor names and shapes")
    job = os.path.join(d, "job.ini")
    with open(job, "w") as f:
        f.write(f"[model]\npath = {d}\n[calibration]\nsource = text\ntext_file = "
                f"{src}/tests/data/kjv-tiny/calib.txt\nn_samples = 1\nseq_len = 32\n"
                f"[quantize]\navg_bits = 3\nbits = 2, 3, 4\n[output]\npath = {d}/out.h5\n")
    r = subprocess.run([bin_, "--dry-run", job], capture_output=True, text=True)
    check(r.returncode == 0, f"8x7b dry run rc {r.returncode}: {r.stderr}")
    block = 2 * h + 2 * h * heads * hd + 2 * h * kv * hd + n_exp * h + 3 * n_exp * h * inter
    quantized = 2 * (block - 2 * h - n_exp * h)  # routers stay in full precision
    n_layers = 2 * (4 + 1 + 3 * n_exp)
    line = (f"parameters: {2 * block + 2 * 2048 * h + h} total, {block} per block, {quantized} "
            f"to quantize in {n_layers} linear layers")
    check(line in r.stdout, f"8x7b dry run: expected '{line}' in\n{r.stdout}")
    check(r.stdout.count("no (router)") == 2, "8x7b dry run: both routers kept")
    # --sparse: the same headers and file sizes, the data a hole of zeros, and the
    # dry run accepts it (a full-size 70B checkpoint in well under a megabyte)
    dense, sparse = os.path.join(tmp, "tiny-7b"), os.path.join(tmp, "sparse-7b")
    gen(sparse, "7b", "1", "--hidden", "64", "--intermediate", "176", "--heads", "4",
        "--kv-heads", "4", "--shard-gib", "0.00005", "--sparse")
    a, b = read_shards(dense), read_shards(sparse)
    check({k: v[2] for k, v in a.items()} == {k: v[2] for k, v in b.items()},
          "--sparse: headers differ from the dense checkpoint's")
    for name, (path, base, e) in b.items():
        with open(path, "rb") as f:
            f.seek(base + e["data_offsets"][0])
            data = f.read(e["data_offsets"][1] - e["data_offsets"][0])
        check(data == bytes(len(data)), f"--sparse: {name} is not zeros")
    dry_run(sparse, 64, 176, 4, 4, 2048)
    big = os.path.join(tmp, "sparse-70b")
    gen(big, "70b", "80", "--vocab", "real", "--sparse")
    used = sum(os.stat(os.path.join(big, f)).st_blocks * 512 for f in os.listdir(big))
    size = sum(os.path.getsize(os.path.join(big, f)) for f in os.listdir(big))
    check(size > 128 * (1 << 30) and used < (1 << 20),
          f"--sparse 70B: {size} bytes in files, {used} on disk")

print(f"test_real_shape_checkpoint: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

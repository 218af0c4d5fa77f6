"""make_real_shape_checkpoint.py — a Hugging Face LLaMA checkpoint with the true
dimensions of Llama-2-7B, Llama-2-70B (GQA 8) or Llama-3.1-405B (GQA 8, llama3 RoPE
scaling), or a Mixtral-8x7B-shaped mixture of experts (hidden 4096, GQA 8, 8 experts
of 14336, top-2; issue 13), and a chosen number of decoder blocks, for benchmarks at
real sizes (issue 11). Mixtral routers are drawn like the other hidden-input matrices.

Weights are heavy-tailed (Student-t, `--dof`, scaled to variance 1/d_in) with a few
outlier input channels (`--outliers` columns scaled by `--outlier-scale`; the same
hidden channels in q/k/v/gate/up, as real models' activation outliers are, and their
own set in down_proj), so the tricks and the encoder see realistic columns. Norm
weights are 1 + small noise.

Output: config.json, sharded BF16 safetensors (model-0000i-of-0000N.safetensors, at
most `--shard-gib` each) with model.safetensors.index.json, and the tokenizer files of
tests/data/kjv-tiny. The model is streamed to disk tensor by tensor and a few million
values at a time: memory stays at tens of MiB whatever the shape.

Vocabulary: by default the embedding and lm_head have the kjv-tiny tokenizer's 2048
rows, consistent with the tokenizer that is copied (calibration text then tokenizes to
valid ids). `--vocab real` gives them the model's true vocabulary (32000 or 128256)
instead, for memory measurements at the true size; the tokenizer only ever produces ids
below 2048, so the extra rows are never looked up.

Usage: /usr/bin/python3 make_real_shape_checkpoint.py OUT_DIR {7b,70b,405b,8x7b} BLOCKS
         [--shard-gib G] [--seed S] [--dof NU] [--outliers K] [--outlier-scale X]
         [--vocab tokenizer|real] [--config-only] [--sparse]
         [--hidden H --intermediate I --heads A --kv-heads K --experts E]
                                                     (tiny shapes for tests)
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

SHAPES = {
    "7b": dict(name="Llama-2-7B", hidden_size=4096, intermediate_size=11008,
               num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
               rope_theta=10000.0, max_position_embeddings=4096, rope_scaling=None),
    "70b": dict(name="Llama-2-70B", hidden_size=8192, intermediate_size=28672,
                num_attention_heads=64, num_key_value_heads=8, vocab_size=32000,
                rope_theta=10000.0, max_position_embeddings=4096, rope_scaling=None),
    "405b": dict(name="Llama-3.1-405B", hidden_size=16384, intermediate_size=53248,
                 num_attention_heads=128, num_key_value_heads=8, vocab_size=128256,
                 rope_theta=500000.0, max_position_embeddings=131072,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192}),
    "8x7b": dict(name="Mixtral-8x7B", hidden_size=4096, intermediate_size=14336,
                 num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                 rope_theta=1000000.0, max_position_embeddings=32768, rope_scaling=None,
                 num_local_experts=8, num_experts_per_tok=2),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                   "special_tokens_map.json")
CHUNK_VALUES = 1 << 22  # values generated and converted at a time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("shape", choices=sorted(SHAPES))
    p.add_argument("blocks", type=int)
    p.add_argument("--shard-gib", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dof", type=float, default=4.0)
    p.add_argument("--outliers", type=int, default=4)
    p.add_argument("--outlier-scale", type=float, default=20.0)
    p.add_argument("--vocab", choices=("tokenizer", "real"), default="tokenizer")
    p.add_argument("--config-only", action="store_true",
                   help="write config.json and the tokenizer only")
    p.add_argument("--sparse", action="store_true",
                   help="write the shards' headers and leave the data a hole (all-zero "
                        "weights, no disk space): enough for raana-mpi --dry-run at full size")
    for k in ("hidden", "intermediate", "heads", "kv-heads", "experts"):
        p.add_argument("--" + k, type=int)
    a = p.parse_args(argv)
    if a.blocks < 1 or a.shard_gib <= 0 or a.dof <= 2 or a.outliers < 0:
        p.error("need BLOCKS >= 1, --shard-gib > 0, --dof > 2, --outliers >= 0")
    return a


def model_config(a, tiny_cfg):
    s = dict(SHAPES[a.shape])
    for key, arg in (("hidden_size", a.hidden), ("intermediate_size", a.intermediate),
                     ("num_attention_heads", a.heads), ("num_key_value_heads", a.kv_heads),
                     ("num_local_experts", a.experts)):
        if arg is not None:
            if key == "num_local_experts" and "num_local_experts" not in s:
                sys.exit("make_real_shape_checkpoint: error: --experts needs a mixture-of-experts "
                         "shape (8x7b)")
            s[key] = arg
    h, heads, kv = s["hidden_size"], s["num_attention_heads"], s["num_key_value_heads"]
    if h % heads or heads % kv or (h // heads) % 2:
        sys.exit(f"make_real_shape_checkpoint: error: hidden {h} / heads {heads} / kv {kv} "
                 "do not give an even head_dim with whole GQA groups")
    vocab = s["vocab_size"] if a.vocab == "real" else tiny_cfg["vocab_size"]
    if "num_local_experts" in s:
        return {
            "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_act": "silu",
            "hidden_size": h, "intermediate_size": s["intermediate_size"],
            "num_attention_heads": heads, "num_key_value_heads": kv,
            "num_local_experts": s["num_local_experts"],
            "num_experts_per_tok": s["num_experts_per_tok"], "num_hidden_layers": a.blocks,
            "vocab_size": vocab, "max_position_embeddings": s["max_position_embeddings"],
            "rms_norm_eps": 1e-5, "rope_theta": s["rope_theta"], "sliding_window": None,
            "output_router_logits": False, "router_aux_loss_coef": 0.02,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "bos_token_id": tiny_cfg["bos_token_id"], "eos_token_id": tiny_cfg["eos_token_id"],
            "_raana_real_shape": s["name"],
        }
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "mlp_bias": False, "hidden_act": "silu",
        "hidden_size": h, "intermediate_size": s["intermediate_size"],
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": h // heads,
        "num_hidden_layers": a.blocks, "vocab_size": vocab,
        "max_position_embeddings": s["max_position_embeddings"], "rms_norm_eps": 1e-5,
        "rope_theta": s["rope_theta"], "rope_scaling": s["rope_scaling"],
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "bos_token_id": tiny_cfg["bos_token_id"], "eos_token_id": tiny_cfg["eos_token_id"],
        "_raana_real_shape": s["name"],
    }


def tensor_list(c):
    """(name, shape, kind) in Hugging Face order; kind picks the generator."""
    h, inter, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = c.get("head_dim", h // c["num_attention_heads"])
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (v, h), "embed")]
    for b in range(c["num_hidden_layers"]):
        p = f"model.layers.{b}."
        out += [(p + "self_attn.q_proj.weight", (q, h), "hidden_in"),
                (p + "self_attn.k_proj.weight", (kv, h), "hidden_in"),
                (p + "self_attn.v_proj.weight", (kv, h), "hidden_in"),
                (p + "self_attn.o_proj.weight", (h, q), "plain")]
        if "num_local_experts" in c:  # Mixtral: router, then w1 (gate), w3 (up), w2 (down)
            e = p + "block_sparse_moe."
            out += [(e + "gate.weight", (c["num_local_experts"], h), "hidden_in")]
            for x in range(c["num_local_experts"]):
                out += [(f"{e}experts.{x}.w1.weight", (inter, h), "hidden_in"),
                        (f"{e}experts.{x}.w3.weight", (inter, h), "hidden_in"),
                        (f"{e}experts.{x}.w2.weight", (h, inter), "inter_in")]
        else:
            out += [(p + "mlp.gate_proj.weight", (inter, h), "hidden_in"),
                    (p + "mlp.up_proj.weight", (inter, h), "hidden_in"),
                    (p + "mlp.down_proj.weight", (h, inter), "inter_in")]
        out += [(p + "input_layernorm.weight", (h,), "norm"),
                (p + "post_attention_layernorm.weight", (h,), "norm")]
    out += [("model.norm.weight", (h,), "norm"), ("lm_head.weight", (v, h), "plain")]
    return out


def to_bf16(a):
    """f32 -> BF16 bytes, rounding to nearest even."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()


def tensor_chunks(index, shape, kind, a, outlier_cols):
    """Yields BF16 bytes of one tensor, a few million values at a time."""
    rng = np.random.default_rng([a.seed, index])
    if len(shape) == 1:
        yield to_bf16(1.0 + 0.05 * rng.standard_normal(shape[0], dtype=np.float32))
        return
    rows, cols = shape
    std = np.sqrt((a.dof - 2) / a.dof / cols)  # Student-t scaled to variance 1/cols
    col_scale = np.ones(cols, np.float32)
    if kind in outlier_cols:
        col_scale[outlier_cols[kind]] = a.outlier_scale
    step = max(1, CHUNK_VALUES // cols)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        w = rng.standard_t(a.dof, size=(n, cols)).astype(np.float32) * np.float32(std)
        yield to_bf16(w * col_scale)


def plan_shards(tensors, limit):
    shards, cur, size = [], [], 0
    for t in tensors:
        nbytes = 2 * int(np.prod(t[1]))
        if cur and size + nbytes > limit:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += nbytes
    shards.append(cur)
    return shards


def write_shard(path, shard, order, a, outlier_cols):
    header, offset = {}, 0
    for name, shape, _ in shard:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        if a.sparse:  # a hole of the data's size: reads as zeros
            f.truncate(8 + len(text) + offset)
            shard = []
        for name, shape, kind in shard:
            for blob in tensor_chunks(order[name], shape, kind, a, outlier_cols):
                f.write(blob)
    os.replace(tmp, path)
    return offset


def main(argv):
    a = parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    tiny = os.path.join(here, "..", "tests", "data", "kjv-tiny")
    with open(os.path.join(tiny, "config.json")) as f:
        c = model_config(a, json.load(f))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(tiny, name)):
            shutil.copy(os.path.join(tiny, name), a.out)
    if a.config_only:
        return
    rng = np.random.default_rng([a.seed, 1 << 30])
    k = a.outliers
    outlier_cols = {
        "hidden_in": rng.choice(c["hidden_size"], size=min(k, c["hidden_size"]), replace=False),
        "inter_in": rng.choice(c["intermediate_size"], size=min(k, c["intermediate_size"]),
                               replace=False)}
    tensors = tensor_list(c)
    order = {name: i for i, (name, _, _) in enumerate(tensors)}
    shards = plan_shards(tensors, int(a.shard_gib * (1 << 30)))
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_shard(os.path.join(a.out, fname), shard, order, a, outlier_cols)
        weight_map.update({name: fname for name, _, _ in shard})
        print(f"{a.out}/{fname}: {len(shard)} tensors", flush=True)
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    params = sum(int(np.prod(s)) for _, s, _ in tensors)
    print(f"{a.out}: {c['_raana_real_shape']} shape, {a.blocks} blocks, {params} parameters, "
          f"{total / (1 << 30):.2f} GiB BF16 in {len(shards)} shards; outlier hidden channels "
          f"{sorted(outlier_cols['hidden_in'].tolist())}")


if __name__ == "__main__":
    main(sys.argv[1:])

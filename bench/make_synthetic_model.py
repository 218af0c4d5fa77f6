"""make_synthetic_model.py — a LLaMA-architecture checkpoint with random BF16
weights, for benchmarks: config.json, model.safetensors, and the tokenizer of
the bundled kjv-tiny model (whose vocabulary size it takes).
Usage: /usr/bin/python3 make_synthetic_model.py OUT_DIR HIDDEN INTERMEDIATE LAYERS HEADS"""
import json
import os
import shutil
import struct
import sys

import numpy as np

out, hidden, inter, layers, heads = sys.argv[1], *map(int, sys.argv[2:6])
here = os.path.dirname(os.path.abspath(__file__))
tiny = os.path.join(here, "..", "tests", "data", "kjv-tiny")
cfg = json.load(open(os.path.join(tiny, "config.json")))
vocab = cfg["vocab_size"]
cfg.update(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
           num_attention_heads=heads, num_key_value_heads=heads, tie_word_embeddings=False)
cfg.pop("head_dim", None)
os.makedirs(out, exist_ok=True)
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
for name in ("tokenizer.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(tiny, name)):
        shutil.copy(os.path.join(tiny, name), out)

rng = np.random.default_rng(0)
shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
          "lm_head.weight": (vocab, hidden)}
for b in range(layers):
    p = f"model.layers.{b}."
    for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
        shapes[p + f"self_attn.{n}.weight"] = (hidden, hidden)
    shapes[p + "mlp.gate_proj.weight"] = (inter, hidden)
    shapes[p + "mlp.up_proj.weight"] = (inter, hidden)
    shapes[p + "mlp.down_proj.weight"] = (hidden, inter)
    shapes[p + "input_layernorm.weight"] = (hidden,)
    shapes[p + "post_attention_layernorm.weight"] = (hidden,)
header, blobs, offset = {}, [], 0
for name, shape in sorted(shapes.items()):
    if len(shape) == 1:
        a = np.ones(shape, np.float32)
    else:
        a = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])
    bf16 = (a.view(np.uint32) >> 16).astype("<u2").tobytes()
    header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(bf16)]}
    blobs.append(bf16)
    offset += len(bf16)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for blob in blobs:
        f.write(blob)
print(f"{out}: {sum(int(np.prod(s)) for s in shapes.values()) / 1e6:.1f}M parameters")

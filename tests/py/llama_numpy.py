"""llama_numpy.py — an independent LLaMA forward pass in plain numpy (float64),
written from the Hugging Face LlamaForCausalLM conventions, not from raana's C:
RMSNorm, RoPE with rotate_half (dimension i pairs with i + head_dim/2), grouped
query attention with a causal mask, SwiGLU MLP down(silu(gate(x)) * up(x)),
tied or untied lm_head. Safetensors are read with numpy alone (BF16 -> f32 by
a 16-bit shift). Plus the evaluation numbers raana-eval reports, computed here
the way docs/EVALUATION.md defines them: per-token NLL, KL(P || Q), argmax.

Used by test_eval_numpy.py; `python3 llama_numpy.py MODEL_DIR` prints a few
numbers for a quick look."""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    """name -> float32 array."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        dtype = info["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").copy()
        else:
            raise ValueError(f"{path}: {name}: dtype {dtype} not handled")
        out[name] = arr.reshape(info["shape"])
    return out


def read_checkpoint(model_dir):
    """(config dict, name -> float32 array) of a checkpoint directory."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    index = os.path.join(model_dir, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            weights.update(read_safetensors(os.path.join(model_dir, shard)))
    else:
        weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return cfg, weights


def write_safetensors_f32(path, tensors):
    """tensors: name -> array, written as F32 in name order."""
    header, offset, chunks = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        chunks.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class Llama:
    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}
        self.h = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = cfg.get("head_dim") or self.h // self.nh
        self.eps = cfg["rms_norm_eps"]
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        if cfg.get("tie_word_embeddings") and "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def rmsnorm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, t):
        """x: [T, heads, hd], rotate_half convention."""
        freqs = np.outer(np.arange(t, dtype=np.float64), self.inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        half = self.hd // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        bias = self.w.get(name + ".bias")
        return y if bias is None else y + bias

    def attention(self, x, p, t):
        q = self.linear(x, p + "q_proj").reshape(t, self.nh, self.hd)
        k = self.linear(x, p + "k_proj").reshape(t, self.nkv, self.hd)
        v = self.linear(x, p + "v_proj").reshape(t, self.nkv, self.hd)
        q, k = self.rope(q, t), self.rope(k, t)
        group = self.nh // self.nkv
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        q, k, v = q.transpose(1, 0, 2), k.transpose(1, 0, 2), v.transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(self.hd)  # [heads, T, T]
        scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(t, self.nh * self.hd)
        return self.linear(ctx, p + "o_proj")

    def mlp(self, x, p):
        g = self.linear(x, p + "gate_proj")
        return self.linear(g / (1.0 + np.exp(-g)) * self.linear(x, p + "up_proj"), p + "down_proj")

    def logits(self, ids):
        """[T, V] float64 logits of one sequence."""
        t = len(ids)
        x = self.w["model.embed_tokens.weight"][np.asarray(ids)]
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = x + self.attention(self.rmsnorm(x, self.w[p + "input_layernorm.weight"]),
                                   p + "self_attn.", t)
            x = x + self.mlp(self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"]),
                             p + "mlp.")
        return self.rmsnorm(x, self.w["model.norm.weight"]) @ self.w["lm_head.weight"].T


def log_softmax(logits):
    m = logits.max(axis=-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))


def windows(stream, seq_len, stride, max_windows=0):
    """(tokens, first scored position) of each window, as docs/EVALUATION.md says."""
    out, start = [], 0
    while start + seq_len <= len(stream) and (not max_windows or len(out) < max_windows):
        first = 1 if not out else max(1, seq_len - stride)
        out.append((stream[start:start + seq_len], first))
        start += stride
    return out


def per_token(models, wins):
    """Per scored token: each model's NLL, and with two models KL(P0 || P1)
    and whether the argmaxes agree."""
    nll = [[] for _ in models]
    kl, agree = [], []
    for ids, first in wins:
        targets = np.asarray(ids[first:])
        logp = [log_softmax(m.logits(ids))[first - 1:-1] for m in models]
        for k, lp in enumerate(logp):
            nll[k].append(-lp[np.arange(len(targets)), targets])
        if len(models) == 2:
            kl.append((np.exp(logp[0]) * (logp[0] - logp[1])).sum(axis=-1))
            agree.append(logp[0].argmax(axis=-1) == logp[1].argmax(axis=-1))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
    return [cat(x) for x in nll], cat(kl), cat(agree)


def summary(nll):
    n, mean = len(nll), float(np.mean(nll))
    ppl = float(np.exp(mean))
    return {"perplexity": ppl, "perplexity_se": ppl * float(np.std(nll, ddof=1)) / np.sqrt(n),
            "mean_nll": mean}


if __name__ == "__main__":
    cfg, w = read_checkpoint(sys.argv[1])
    model = Llama(cfg, w)
    ref = json.load(open(os.path.join(sys.argv[1], "reference.json")))["forward_check"]
    lg = model.logits(ref["input_ids"])
    print("max |last logits - reference|:", np.abs(lg[-1] - ref["last_logits"]).max())

"""check_export.py — a raana-export output directory read with numpy alone
(safetensors headers parsed here from the format's specification) against
the container (h5py), raana-inspect --dequantize and the original checkpoint:

- the weight files: model.safetensors alone, or model-0000i-of-0000N shards
  (all N, nothing else) with model.safetensors.index.json whose weight_map
  names every tensor exactly once and the shard that holds it, and whose
  metadata.total_size is the sum of the tensors' bytes; each file's offsets
  are contiguous from 0 and its data ends at the end of the file;
- every tensor has the export dtype and equals, after rounding implemented
  here independently (BF16: nearest of the two neighbours in double, ties to
  even; F16: numpy's float16), raana-inspect --dequantize for quantized
  layers and the original checkpoint's value for every other tensor;
- config.json is the checkpoint's plus torch_dtype and the quantization
  record (method, format version, per-layer bits equal to the container's);
  the tokenizer and generation files are the checkpoint's bytes;
- the manifest raana-export.json lists every other file of the directory.

Usage: /usr/bin/python3 check_export.py CONTAINER MODEL_DIR RAANA_INSPECT \
           OUTDIR:DTYPE:MIN_FILES [...]
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin.
RAANA_DEQUANTIZED_DIR=DIR (optional): raana-inspect --dequantize's output of
every layer as check_container.py kept it for this container and this
raana-inspect (dequantized_cache.py) is read from there instead of running
raana-inspect again; without it, or for another container, it is run here."""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_tensors_numpy import read_model  # noqa: E402
import dequantized_cache  # noqa: E402

passed = failed = 0
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}
TORCH = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
COPIED = ["generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "tokenizer.model"]
KINDS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def round_bf16(x):
    """f32 -> BF16 bits: the nearer of the two BF16 neighbours, ties to even."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    bits = x.view(np.uint32)
    lo = bits & np.uint32(0xFFFF0000)  # toward zero
    hi = lo + np.uint32(0x10000)        # next magnitude away from zero
    v = x.astype(np.float64)
    d_lo = np.abs(v - lo.view(np.float32).astype(np.float64))
    d_hi = np.abs(v - hi.view(np.float32).astype(np.float64))
    lo_even = ((lo >> 16) & 1) == 0
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & ~lo_even)
    return np.where(pick_hi, hi, lo).astype(np.uint32) >> 16


def expected_bytes(values, dtype):
    v = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if dtype == "F32":
        return v.astype("<f4").tobytes()
    if dtype == "F16":
        return v.astype("<f2").tobytes()
    return round_bf16(v).astype("<u2").tobytes()


def read_safetensors_raw(path):
    """{name: (dtype, shape, raw bytes)}, checking the layout."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        numel = int(np.prod(info["shape"])) if info["shape"] else 1
        check(end - begin == numel * DTYPE_BYTES.get(info["dtype"], 0),
              f"{path}: {name} byte count")
        spans.append((begin, end))
        out[name] = (info["dtype"], info["shape"], data[begin:end])
    spans.sort()
    pos = 0
    for begin, end in spans:
        check(begin == pos, f"{path}: offsets contiguous at {begin}")
        pos = end
    check(pos == len(data), f"{path}: data ends at the end of the file ({pos} vs {len(data)})")
    return out


def weight_files(outdir, min_files):
    files = sorted(f for f in os.listdir(outdir) if f.endswith(".safetensors"))
    index_path = os.path.join(outdir, "model.safetensors.index.json")
    tensors = {}
    if files == ["model.safetensors"]:
        check(not os.path.exists(index_path), "no index beside model.safetensors")
        check(min_files <= 1, f"{outdir}: expected at least {min_files} shards, got 1 file")
        tensors = read_safetensors_raw(os.path.join(outdir, "model.safetensors"))
        return tensors, files
    n = len(files)
    check(n >= min_files, f"{outdir}: {n} shards, expected at least {min_files}")
    check(files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)],
          f"{outdir}: shard names {files}")
    index = json.load(open(index_path))
    wmap = index["weight_map"]
    seen = {}
    for shard in files:
        for name, t in read_safetensors_raw(os.path.join(outdir, shard)).items():
            check(name not in seen, f"{name} in two shards")
            seen[name] = shard
            tensors[name] = t
    check(wmap == seen, "weight_map names every tensor once, with the shard holding it")
    total = sum(len(raw) for _, _, raw in tensors.values())
    check(index["metadata"]["total_size"] == total,
          f"total_size {index['metadata']['total_size']} == sum of tensor bytes {total}")
    return tensors, files


def check_config(outdir, dtype, model_dir, h5):
    cfg = json.load(open(os.path.join(outdir, "config.json")))
    orig = json.load(open(os.path.join(model_dir, "config.json")))
    rec = cfg.pop("raana_quantization", None) or cfg.pop("quantization_config", None)
    check(rec is not None, "config.json records the quantization")
    check(cfg.pop("torch_dtype") == TORCH[dtype], "torch_dtype is the export dtype")
    orig.pop("torch_dtype", None)
    check(cfg == orig, "config.json is otherwise the checkpoint's")
    if rec is None:
        return
    check(rec["quant_method"] == "raana", "quant_method raana")
    check(rec["format_version"] == int(h5.attrs["format_version"]), "format_version")
    check(rec["checkpoint_fingerprint"] == h5.attrs["checkpoint_fingerprint"].decode(),
          "checkpoint_fingerprint")
    for key in ("effective_bits_quantized", "effective_bits_model", "achieved_avg_bits"):
        check(rec[key] == float(h5["report"].attrs[key]), key)
    # every linear layer of the plan, in plan order (experts and routers of a
    # mixture of experts included); for a dense model the seven KINDS per block
    layers = [n.decode() if isinstance(n, bytes) else n for n in h5["allocation/name"][()]]
    if orig.get("num_local_experts") is None and orig.get("num_experts") is None:
        check(layers == [f"model.layers.{b}.{k}" for b in range(orig["num_hidden_layers"])
                         for k in KINDS], "plan layers are the dense ones")
    quantized = {n for n in layers if n in h5["layers"]}
    check(rec["bits"] == {n: float(h5["layers"][n].attrs["bits"]) for n in quantized},
          "bits per layer == the container's")
    check(rec["unquantized_layers"] == [n for n in layers if n not in quantized],
          "unquantized layers")


def check_export(container, model_dir, inspect, outdir, dtype, min_files, ckpt, deq):
    tensors, files = weight_files(outdir, min_files)
    check(sorted(tensors) == sorted(ckpt), f"{outdir}: the checkpoint's tensor names")
    for name, (dt, shape, raw) in sorted(tensors.items()):
        check(dt == dtype, f"{name}: dtype {dt}")
        want = deq.get(name)
        want = ckpt[name] if want is None else want
        check(list(shape) == list(ckpt[name].shape), f"{name}: shape")
        check(raw == expected_bytes(want, dtype), f"{outdir}: {name} == reference rounded to {dtype}")
    with h5py.File(container, "r") as h5:
        check_config(outdir, dtype, model_dir, h5)
    for f in COPIED:
        if not os.path.exists(os.path.join(model_dir, f)):  # e.g. no generation_config.json
            check(not os.path.exists(os.path.join(outdir, f)), f"{f} not invented")
            continue
        check(open(os.path.join(outdir, f), "rb").read() ==
              open(os.path.join(model_dir, f), "rb").read(), f"{f} copied")
    manifest = json.load(open(os.path.join(outdir, "raana-export.json")))
    others = sorted(f for f in os.listdir(outdir) if f != "raana-export.json")
    check(sorted(manifest["files"]) == others, "manifest lists every file")


def dequantized(container, inspect, ckpt):
    """name.weight -> raana-inspect --dequantize, [d_out, d_in]."""
    out = {}
    with h5py.File(container, "r") as h5, tempfile.TemporaryDirectory() as tmp:
        layers = list(h5["layers"])
        kept = dequantized_cache.lookup(os.environ.get("RAANA_DEQUANTIZED_DIR"), container,
                                        inspect, layers)
        if kept:
            print(f"check_export: raana-inspect --dequantize of {len(layers)} layers from {kept}")
        for layer in layers:
            if kept:  # check_container.py's runs of the same raana-inspect on this file
                path = dequantized_cache.path(kept, layer)
                check(os.path.getsize(path) == 4 * ckpt[layer + ".weight"].size,
                      "raana-inspect --dequantize " + layer + ": size of the kept output")
            else:
                path = os.path.join(tmp, "w.f32")
                r = subprocess.run([inspect, container, "--dequantize", layer, path],
                                   capture_output=True, text=True)
                check(r.returncode == 0, "raana-inspect --dequantize " + layer + r.stderr)
            w = np.fromfile(path, dtype="<f4")
            out[layer + ".weight"] = w.reshape(ckpt[layer + ".weight"].shape)
    return out


def main():
    container, model_dir, inspect = sys.argv[1:4]
    ckpt = read_model(model_dir)
    deq = dequantized(container, inspect, ckpt)
    check(len(deq) > 0, "container has quantized layers")
    for spec in sys.argv[4:]:
        outdir, dtype, min_files = spec.rsplit(":", 2)
        check_export(container, model_dir, inspect, outdir, dtype, int(min_files), ckpt, deq)
    # the rounding helper itself, on values whose BF16 rounding is known
    probe = np.array([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 1 + 2**-8 + 2**-20], np.float32)
    check(list(round_bf16(probe)) == [0x3F80, 0x3F82, 0xBF80, 0x3F81], "round_bf16 probes")
    print(f"check_export: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

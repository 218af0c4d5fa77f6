#!/usr/bin/env python3
"""check_moe_stats.py CONTAINER.h5 FIXTURE_DIR REPORT.txt — a mixture-of-experts
container against the fixture's reference.json (independent PyTorch numbers):
every linear layer's calibration norms ||X||, ||Y||, ||dL/dY|| (/allocation
x_fro, y_fro, dy_fro of a one-window calibration on window.txt) within 1e-4
relative; every router kept in full precision (not quantized, its weight in
/tensors bit-equal to the checkpoint's); every expert projection quantized;
and the job's report lines "block B tokens per expert: ..." equal to
expert_token_counts."""
import json
import re
import struct
import sys

import h5py
import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, t in header.items():
            if name == "__metadata__":
                continue
            a, b = t["data_offsets"]
            f.seek(base + a)
            raw = np.frombuffer(f.read(b - a), dtype=np.uint16)
            assert t["dtype"] == "BF16", t["dtype"]
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(t["shape"])
        return out


def main():
    path, fixture, report = sys.argv[1:4]
    ref = json.load(open(f"{fixture}/reference.json"))
    failed = 0
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["/allocation/name"][()]]
        col = {k: f[f"/allocation/{k}"][()] for k in ("x_fro", "y_fro", "dy_fro", "quantized")}
        row = {n: i for i, n in enumerate(names)}
        worst = 0.0
        for name, r in ref["layers"].items():
            if name not in row:
                print(f"missing layer {name}")
                failed += 1
                continue
            i = row[name]
            for key, want in (("x_fro", r["x_norm"]), ("y_fro", r["y_norm"]),
                              ("dy_fro", r["grad_y_norm"])):
                rel = abs(col[key][i] - want) / want
                worst = max(worst, rel)
                if rel > 1e-4:
                    print(f"{name} {key} {col[key][i]} vs {want} (rel {rel:.2e})")
                    failed += 1
            router = name.endswith(".gate")
            if bool(col["quantized"][i]) == router:
                print(f"{name}: quantized = {col['quantized'][i]}")
                failed += 1
        if len(names) != len(ref["layers"]):
            print(f"{len(names)} plan layers, reference has {len(ref['layers'])}")
            failed += 1
        weights = read_safetensors(f"{fixture}/model.safetensors")
        for name in ref["layers"]:
            if name.endswith(".gate"):
                got = f[f"/tensors/{name}.weight"]
                raw = np.asarray(got[()])
                want = weights[f"{name}.weight"]
                as_f32 = (raw.astype(np.uint32) << 16).view(np.float32) if raw.dtype == np.uint16 \
                    else raw.astype(np.float32)
                if not np.array_equal(as_f32.reshape(want.shape), want):
                    print(f"router {name} differs from the checkpoint")
                    failed += 1
    text = open(report).read()
    got_counts = [list(map(int, m.group(2).split()))
                  for m in re.finditer(r"block (\d+) tokens per expert:([ \d]+)", text)]
    if got_counts != ref["expert_token_counts"]:
        print(f"tokens per expert {got_counts} vs {ref['expert_token_counts']}")
        failed += 1
    print(f"check_moe_stats: {len(ref['layers'])} layers, worst relative norm error {worst:.2e}, "
          f"{failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""check_calibration.py — raana-mpi --calibrate-only's JSON against
reference.json's calibration_check: loss within 1e-4, every layer's ||X||,
||Y||, ||dL/dY|| within 1e-3 relative, and grad_rms = ||dL/dY|| / sqrt(rows *
d_out). Usage: check_calibration.py REFERENCE CALIBRATION_JSON"""
import json
import sys

ref = json.load(open(sys.argv[1]))["calibration_check"]
got = json.load(open(sys.argv[2]))
bad = []
if abs(got["loss"] - ref["loss"]) / ref["loss"] > 1e-4:
    bad.append("loss")
layers = {l["name"]: l for l in got["layers"]}
if len(layers) != len(ref["layers"]):
    bad.append("layer count")
rows = len(ref["input_ids"])
for name, r in ref["layers"].items():
    g = layers.get(name)
    if g is None:
        bad.append(name)
        continue
    for key in ("x_fro", "y_fro", "dy_fro"):
        if abs(g[key] - r[key]) / r[key] > 1e-3:
            bad.append(f"{name}.{key}: {g[key]} vs {r[key]}")
    if abs(g["grad_rms"] - g["dy_fro"] / (rows * r["out_features"]) ** 0.5) > 1e-12:
        bad.append(name + ".grad_rms")
print("\n".join(bad))
sys.exit(1 if bad else 0)

"""test_analysis.py — the outputs of analysis/layers.py and analysis/sweep.py
checked against the containers read here independently (h5py, not the
scripts' reader):

- every PNG is a whole PNG (signature, IHDR with a valid CRC, IEND), larger
  than 10 KB, of a sane size, decodes to the IHDR's width x height, and is
  not blank;
- layers.py's numbers.json holds, for every row of /allocation in order, the
  stored name, d_in, d_out, quantized, bits, coef, rel_error, effective_bits;
  block and kind parsed from the name; and a bit breakdown equal to one
  computed here from the stored datasets' sizes and types (codes, rescale,
  mu, row_scale, held_cols + held_values, signs; 16-bit side vectors count
  16 bits each), which also sums to the stored
  effective_bits; its size-weighted total sums to /report
  effective_bits_quantized; summary.md has one row per layer;
- sweep.py's numbers.json has one point per container with /report
  effective_bits_quantized, the series given by the number of allocation
  candidates (one: uniform), ppl_ratio and kl.mean of X.eval.json, then the
  CSV's points;
- when raana-inspect supports --json, layers.py's numbers equal its output.

Usage: /usr/bin/python3 test_analysis.py RAANA_INSPECT LAYERS_OUT CONTAINER
                                        SWEEP_OUT EXTRA_CSV EXTRA_NAME C1.h5 C2.h5 ...
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
import csv
import json
import math
import os
import struct
import subprocess
import sys
import zlib

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402

passed = failed = 0
REL = 1e-12


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def close(a, b, rel=REL):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)


# ------------------------------------------------------------------ PNGs

def check_png(path):
    name = os.path.basename(path)
    if not os.path.isfile(path):
        check(False, f"{path} missing")
        return
    data = open(path, "rb").read()
    check(len(data) > 10 * 1024, f"{name}: {len(data)} bytes, expected > 10 KB")
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: no PNG signature")
    length, ctype = struct.unpack(">I4s", data[8:16])
    check(ctype == b"IHDR" and length == 13, f"{name}: first chunk is not IHDR")
    ihdr = data[16:29]
    crc = struct.unpack(">I", data[29:33])[0]
    check(zlib.crc32(b"IHDR" + ihdr) == crc, f"{name}: IHDR CRC wrong")
    width, height = struct.unpack(">II", ihdr[:8])
    check(600 <= width <= 6000 and 400 <= height <= 4000,
          f"{name}: {width}x{height} is not a sane plot size")
    check(data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", f"{name}: does not end with IEND")
    pixels = matplotlib.image.imread(path)
    check(pixels.shape[:2] == (height, width), f"{name}: decodes to {pixels.shape}")
    check(float(np.std(pixels[..., :3])) > 0.05, f"{name}: nearly blank")


# ------------------------------------------------------- layers.py numbers

def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def breakdown_from_datasets(group, d_in, d_out):
    """Bits per weight from what is actually stored (dataset sizes times
    their types' widths: rescale, mu and row_scale are float32, or uint16
    halves with [quantize] side_bits = 16)."""
    n = d_in * d_out

    def bits(key):
        ds = group[key] if key in group else None
        return 0 if ds is None else 8 * ds.size * ds.dtype.itemsize

    out = {
        "codes": bits("codes") / n,
        "rescales": bits("rescale") / n,
        "tricks": (bits("mu") + bits("row_scale") + bits("held_cols") + bits("held_values")) / n,
        "signs": bits("signs") / n,
    }
    if "lowrank_a" in group:  # low-rank factors, uint16 halves
        out["factors"] = (bits("lowrank_a") + bits("lowrank_b")) / n
    return out


def check_layers(numbers_path, container):
    nums = json.load(open(numbers_path))
    f = h5py.File(container, "r")
    alloc = f["allocation"]
    names = [text(n).rstrip("\0") for n in alloc["name"][...]]
    layers = nums["layers"]
    check([la["name"] for la in layers] == names, "numbers.json layers are /allocation's, in order")
    weighted = {"codes": 0.0, "rescales": 0.0, "tricks": 0.0, "signs": 0.0}
    if any(k == "factors" for k in nums["total_bits_breakdown"]):
        weighted["factors"] = 0.0
    total_weights = 0
    for i, la in enumerate(layers[:len(names)]):
        name = names[i]
        parts = name.split(".")
        check(la["block"] == int(parts[parts.index("layers") + 1]), f"{name}: block")
        check(la["kind"] == parts[-1], f"{name}: kind")
        for key in ("d_in", "d_out", "bits", "coef", "rel_error", "effective_bits"):
            check(la[key] == alloc[key][i].item(), f"{name}: {key} {la[key]} != "
                  f"{alloc[key][i].item()}")
        check(la["quantized"] == bool(alloc["quantized"][i]), f"{name}: quantized")
        if not la["quantized"]:
            check(la["bits_breakdown"] is None, f"{name}: unquantized layer has a breakdown")
            continue
        mine = breakdown_from_datasets(f[f"layers/{name}"], la["d_in"], la["d_out"])
        for part, v in mine.items():
            check(close(la["bits_breakdown"][part], v),
                  f"{name}: {part} {la['bits_breakdown'][part]} != {v} from the datasets")
            weighted[part] += v * la["d_in"] * la["d_out"]
        total_weights += la["d_in"] * la["d_out"]
        check(close(sum(mine.values()), la["effective_bits"], 1e-12),
              f"{name}: the stored parts sum to {sum(mine.values())}, "
              f"effective_bits is {la['effective_bits']}")
    total = nums["total_bits_breakdown"]
    for part in weighted:
        check(close(total[part], weighted[part] / total_weights, 1e-12), f"total {part}")
    eff_q = f["report"].attrs["effective_bits_quantized"].item()
    check(close(sum(total.values()), eff_q, 1e-9),
          f"total breakdown {sum(total.values())} != /report effective_bits_quantized {eff_q}")
    for key in ("target_avg_bits", "achieved_avg_bits", "effective_bits_quantized",
                "effective_bits_model"):
        check(nums["report"][key] == f["report"].attrs[key].item(), f"report {key}")
    cands = np.atleast_1d(f["allocation"].attrs["candidates"]).tolist()
    check(nums["allocation"]["candidates"] == cands, "allocation candidates")
    summary = open(os.path.join(os.path.dirname(numbers_path), "summary.md")).read()
    rows = [line for line in summary.splitlines() if line.startswith("| model.")]
    check([r.split("|")[1].strip() for r in rows] == names, "summary.md: one row per layer")
    check("**all quantized (size-weighted)**" in summary and f"**{eff_q:.4f}**" in summary,
          "summary.md: the total row with effective_bits_quantized")
    f.close()
    return nums


def inspect_json(inspect_bin, container):
    """raana-inspect --json's object."""
    r = subprocess.run([inspect_bin, "--json", container], capture_output=True, text=True)
    check(r.returncode == 0, f"raana-inspect --json exit {r.returncode}: {r.stderr}")
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        check(False, f"raana-inspect --json printed no JSON ({e})")
        return {"layers": [], "report": {}, "allocation": {}}


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(b, (int, float)) and isinstance(a, (int, float)) and close(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def check_against_inspect(nums, inspect_bin, container):
    ins = inspect_json(inspect_bin, container)
    check(len(ins["layers"]) == len(nums["layers"]), "raana-inspect --json: layer count")
    for key in ("format", "format_version", "model_type", "checkpoint_fingerprint"):
        check(same(nums[key], ins.get(key)), f"{key} {nums[key]} != raana-inspect's {ins.get(key)}")
    for mine, theirs in zip(nums["layers"], ins["layers"]):
        for key, v in mine.items():
            check(key in theirs and same(v, theirs[key]),
                  f"{mine['name']}: {key} {v} != raana-inspect's {theirs.get(key)}")
    for group in ("report", "allocation"):
        for key, v in nums[group].items():
            check(key in ins[group] and same(v, ins[group][key]),
                  f"{group}.{key} {v} != raana-inspect's {ins[group].get(key)}")
    print("raana-inspect --json: compared")


# -------------------------------------------------------- sweep.py numbers

def check_sweep(numbers_path, containers, extra_csv, extra_name):
    points = json.load(open(numbers_path))["points"]
    rows = list(csv.DictReader(open(extra_csv, newline="")))
    check(len(points) == len(containers) + len(rows), f"{len(points)} points")
    series_seen = set()
    for c, p in zip(containers, points):
        with h5py.File(c, "r") as f:
            eff = f["report"].attrs["effective_bits_quantized"].item()
            n_cand = np.atleast_1d(f["allocation"].attrs["candidates"]).size
        ev = json.load(open(c[:-3] + ".eval.json"))
        check(p["source"] == c, f"{c}: source")
        check(p["effective_bits"] == eff, f"{c}: effective_bits {p['effective_bits']} != {eff}")
        series = "uniform bits" if n_cand == 1 else "AllocateBits"
        series_seen.add(series)
        check(p["series"] == series, f"{c}: series {p['series']}, expected {series}")
        check(p["ppl_ratio"] == ev["ppl_ratio"], f"{c}: ppl_ratio")
        kl = (ev.get("kl") or {}).get("mean")
        check(p["kl_mean"] == kl, f"{c}: kl_mean {p['kl_mean']} != {kl}")
    check(series_seen == {"uniform bits", "AllocateBits"}, "the sweep has both kinds of run")
    for row, p in zip(rows, points[len(containers):]):
        check(p["series"] == extra_name and p["label"] == row["label"], f"CSV {row['label']}")
        check(p["effective_bits"] == float(row["effective_bits"]) and
              p["ppl_ratio"] == float(row["ppl_ratio"]), f"CSV {row['label']}: numbers")
        kl = float(row["kl_mean"]) if row["kl_mean"].strip() else None
        check(p["kl_mean"] == kl, f"CSV {row['label']}: kl_mean")
    summary = open(os.path.join(os.path.dirname(numbers_path), "summary.md")).read()
    for p in points:
        check(f"| {p['label']} |" in summary and f"{p['ppl_ratio']:.6f}" in summary,
              f"summary.md: row of {p['label']}")


def main():
    if sys.argv[1] == "--layers-only":  # layers.py's output for one more container
        inspect_bin, layers_out, container = sys.argv[2:5]
        for png in ("bits_heatmap.png", "coef_vs_bits.png", "rel_error.png", "effective_bits.png"):
            check_png(os.path.join(layers_out, png))
        nums = check_layers(os.path.join(layers_out, "numbers.json"), container)
        check_against_inspect(nums, inspect_bin, container)
        print(f"test_analysis.py: {passed} passed, {failed} failed")
        sys.exit(1 if failed else 0)
    inspect_bin, layers_out, container, sweep_out, extra_csv, extra_name = sys.argv[1:7]
    containers = sys.argv[7:]
    for png in ("bits_heatmap.png", "coef_vs_bits.png", "rel_error.png", "effective_bits.png"):
        check_png(os.path.join(layers_out, png))
    for png in ("sweep_ppl_ratio.png", "sweep_kl.png"):
        check_png(os.path.join(sweep_out, png))
    nums = check_layers(os.path.join(layers_out, "numbers.json"), container)
    check_against_inspect(nums, inspect_bin, container)
    check_sweep(os.path.join(sweep_out, "numbers.json"), containers, extra_csv, extra_name)
    print(f"test_analysis.py: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()

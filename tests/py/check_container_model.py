"""check_container_model.py — a raana container opened as a model
(container_model.h) against independent readers:

- the model's tensors are exactly the checkpoint's names; every tensor kept
  unquantized equals the checkpoint's values (numpy's own safetensors reader,
  converted to f32) bit for bit; every quantized layer's "<layer>.weight"
  equals `raana-inspect --dequantize` bit for bit, with shape [d_out][d_in];
- the container's tokenizer.json is the checkpoint's file, its fingerprint the
  root attribute read by h5py;
- the whole network loads through raana_stage_open_model;
- bad containers (made with h5py from a copy) fail with one message and the
  documented exit: no /layers (4), format_version 4 (8), truncated (4), a
  required tensor missing (4), a NaN in a tensor (9, named).

Two containers of jobs/kjv-tiny.ini: the default job, and a sub-bit variant
with every trick and k_proj excluded (kept in /tensors as BF16).

Usage: /usr/bin/python3 check_container_model.py TOOL RAANA_MPI RAANA_INSPECT SOURCE_DIR
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_tensors_numpy import read_model  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def make_container(mpi_bin, src, out, extra):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    job = os.path.join(src, "jobs", "kjv-tiny.ini")
    cmd = [mpi_bin, job, "--set", "output.path=" + out] + sum((["--set", s] for s in extra), [])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit("raana-mpi failed: " + r.stderr)


def check_good(tool, inspect, container, fixture, tmp):
    dump = os.path.join(tmp, "dump")
    os.mkdir(dump)
    r = run([tool, container, dump])
    check(r.returncode == 0, f"container_model_tool exit {r.returncode}: {r.stderr}")
    if r.returncode != 0:
        return
    listing = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts[0] == "fingerprint":
            with h5py.File(container, "r") as f:
                check(parts[1] == f.attrs["checkpoint_fingerprint"].decode(), "fingerprint")
        elif parts[0] == "network:":
            check(line == "network: 4 blocks loaded", "network loaded: " + line)
        else:
            listing[parts[0]] = (parts[1], [int(x) for x in parts[2:]])
    ckpt = read_model(fixture)
    check(sorted(listing) == sorted(ckpt), "model's names == checkpoint's names")
    with h5py.File(container, "r") as f:
        layers = set(f["layers"].keys())
        check(len(layers) > 0, "container has layers")
        for name, (dtype, shape) in sorted(listing.items()):
            got = np.fromfile(os.path.join(dump, name + ".f32"), dtype="<f4")
            layer = name[: -len(".weight")] if name.endswith(".weight") else None
            if layer in layers:
                g = f["layers"][layer]
                check(dtype == "F32" and shape == [int(g.attrs["d_out"]), int(g.attrs["d_in"])],
                      f"{name}: F32 [d_out, d_in], got {dtype} {shape}")
                out = os.path.join(tmp, "inspect.f32")
                ri = run([inspect, container, "--dequantize", layer, out])
                check(ri.returncode == 0, "raana-inspect --dequantize " + layer)
                want = np.fromfile(out, dtype="<f4")
                check(got.tobytes() == want.tobytes(), name + " == raana-inspect --dequantize")
            else:
                check(dtype == f["tensors"][name].attrs["dtype"].decode(), name + " dtype")
                check(shape == list(ckpt[name].shape), name + " shape")
                want = np.ascontiguousarray(ckpt[name], dtype="<f4").reshape(-1)
                check(got.tobytes() == want.tobytes(), name + " == checkpoint, bit for bit")
    tok = open(os.path.join(dump, "tokenizer.json"), "rb").read()
    check(tok == open(os.path.join(fixture, "tokenizer.json"), "rb").read(), "tokenizer.json")


def expect_failure(tool, path, tmp, rc, text, what):
    dump = tempfile.mkdtemp(dir=tmp)
    r = run([tool, path, dump])
    lines = [ln for ln in r.stderr.splitlines() if ln]
    check(r.returncode == rc, f"{what}: exit {r.returncode}, expected {rc}: {r.stderr}")
    check(len(lines) == 1 and text in lines[0], f"{what}: one line with '{text}': {r.stderr}")


def check_bad(tool, good, tmp):
    def copy(name):
        path = os.path.join(tmp, name)
        shutil.copyfile(good, path)
        return path

    c = copy("nolayers.h5")
    with h5py.File(c, "a") as f:
        del f["layers"]
    expect_failure(tool, c, tmp, 4, "holds no quantized layers", "no /layers")
    c = copy("v4.h5")
    with h5py.File(c, "a") as f:
        f.attrs["format_version"] = np.int64(4)
    expect_failure(tool, c, tmp, 8, "container format version 4; this raana reads versions 1 to 3",
                   "format version 4")
    c = copy("missing.h5")
    with h5py.File(c, "a") as f:
        del f["tensors/model.norm.weight"]
    expect_failure(tool, c, tmp, 4, "'model.norm.weight' is missing", "missing tensor")
    c = copy("nan.h5")
    with h5py.File(c, "a") as f:
        t = f["tensors/model.norm.weight"]
        bits = t[...].copy()
        bits[7] = 0x7FC0  # a BF16 NaN
        del f["tensors/model.norm.weight"]
        f["tensors/model.norm.weight"] = bits
        f["tensors/model.norm.weight"].attrs["dtype"] = np.bytes_("BF16")
    expect_failure(tool, c, tmp, 9, "'model.norm.weight' holds NaN", "NaN tensor")
    c = os.path.join(tmp, "cut.h5")
    data = open(good, "rb").read()
    open(c, "wb").write(data[: len(data) // 2])
    expect_failure(tool, c, tmp, 4, "cut.h5: truncated: ", "truncated container")


def main():
    tool, mpi_bin, inspect, src = sys.argv[1:5]
    fixture = os.path.join(src, "tests", "data", "kjv-tiny")
    with tempfile.TemporaryDirectory() as tmp:
        default = os.path.join(tmp, "default.h5")
        make_container(mpi_bin, src, default, [])
        sub = os.path.join(tmp, "sub.h5")
        make_container(mpi_bin, src, sub, ["quantize.bits=0.5,0.75,1,2", "quantize.avg_bits=0.9",
                                           "quantize.tricks=centralize,norm_col,norm_row",
                                           "quantize.exclude=*.k_proj", "quantize.encoder=fast"])
        for c in (default, sub):
            d = tempfile.mkdtemp(dir=tmp)
            check_good(tool, inspect, c, fixture, d)
        check_bad(tool, default, tmp)
    print(f"check_container_model: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

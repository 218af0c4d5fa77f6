"""check_inspect.py — raana-inspect --json against h5py reading the same
container (an independent reader), and --verify on good and damaged
containers:

- every value of --json equals the container's attribute or /allocation
  column (exactly: JSON keeps 17 significant digits); bits_breakdown is
  recomputed here from the stored datasets' shapes and types (codes,
  rescale, mu, row_scale, held columns, signs) and sums to the layer's
  effective_bits;
  unquantized layers have no breakdown and bits 0 (excluded) or 16 (kept
  in 16 bits by AllocateBits, as /allocation says); options in any order;
- --verify passes on the good container and names the damaged object on:
  one flipped byte inside a compressed chunk of a tensor and of a layer's
  codes (Fletcher-32), a layer whose d_in disagrees with config.json, and a
  layer group that is not a linear layer of the architecture.

Three containers of jobs/kjv-tiny.ini: the default job, a sub-bit variant
with every trick and k_proj excluded, and one with every trick and 16-bit
side vectors ([quantize] side_bits = 16: rescale, mu and row_scale stored as
uint16 halves, counted 16 bits each).

Usage: /usr/bin/python3 check_inspect.py RAANA_MPI RAANA_INSPECT SOURCE_DIR
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

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
    job = os.path.join(src, "jobs", "kjv-tiny.ini")
    cmd = [mpi_bin, job, "--set", "output.path=" + out] + sum((["--set", s] for s in extra), [])
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if r.returncode != 0:
        sys.exit("raana-mpi failed: " + r.stderr)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def check_json(inspect, path):
    r = run([inspect, "--json", path])
    check(r.returncode == 0, "--json exit " + r.stderr)
    j = json.loads(r.stdout)
    check(run([inspect, path, "--json"]).stdout == r.stdout, "--json after FILE: same output")
    with h5py.File(path, "r") as f:
        check(j["path"] == path, "path")
        for k in ("format", "model_type", "checkpoint_fingerprint"):
            check(j[k] == text(f.attrs[k]), k)
        check(j["format_version"] == int(f.attrs["format_version"]), "format_version")
        for k, v in j["report"].items():
            check(v == float(f["report"].attrs[k]), "report " + k)
        check(len(j["report"]) == 4, "report keys")
        cal = f["calibration"]
        check(j["calibration"]["loss"] == float(cal.attrs["loss"]), "calibration loss")
        for k in ("source", "fingerprint"):
            check(j["calibration"][k] == text(cal.attrs[k]), "calibration " + k)
        check([j["calibration"]["windows"], j["calibration"]["seq_len"]] ==
              list(cal["tokens"].shape), "calibration windows, seq_len")
        al = f["allocation"]
        for k in ("avg_bits", "achieved_avg_bits", "modelled_error", "lower_bound"):
            check(j["allocation"][k] == float(al.attrs[k]), "allocation " + k)
        check(j["allocation"]["candidates"] == [float(x) for x in al.attrs["candidates"]],
              "candidates")
        check(j["allocation"]["method"] == text(al.attrs["method"]), "method")
        names = [text(n) for n in al["name"][...]]
        check([l["name"] for l in j["layers"]] == names, "layers in plan order")
        for i, l in enumerate(j["layers"]):
            q = bool(al["quantized"][i])
            check(l["quantized"] == q, l["name"] + " quantized")
            check(l["block"] == int(l["name"].split(".")[2]), l["name"] + " block")
            check(l["kind"] == l["name"].split(".")[-1], l["name"] + " kind")
            check([l["d_in"], l["d_out"]] == [int(al["d_in"][i]), int(al["d_out"][i])], "dims")
            for k in ("coef", "grad_rms", "x_rms", "w_fro", "rel_error", "mean_cosine",
                      "effective_bits"):
                check(l[k] == float(al[k][i]), f"{l['name']} {k}")
            if not q:
                check(l["bits"] == float(al["bits"][i]) in (0.0, 16.0) and l["bits_breakdown"] is None,
                      l["name"] + " unquantized")
                continue
            g = f["layers"][l["name"]]
            check(l["bits"] == float(g.attrs["bits"]), l["name"] + " bits")
            d_in, d_out = int(g.attrs["d_in"]), int(g.attrs["d_out"])
            n = d_in * d_out
            # side vectors at their stored width: float32, or 16-bit halves
            tricks = sum(8 * g[t].dtype.itemsize * d_in for t in ("mu", "row_scale") if t in g)
            tricks += g["held_cols"].shape[0] * (32 * d_in + 32)
            want = {"codes": 8 * g["codes"].size / n,
                    "rescales": 8 * g["rescale"].dtype.itemsize * g["rescale"].size / n,
                    "tricks": tricks / n, "signs": 8 * g["signs"].size / n}
            b = l["bits_breakdown"]
            check(all(math.isclose(b[k], want[k], rel_tol=1e-12) for k in want),
                  f"{l['name']} breakdown {b} vs {want}")
            check(math.isclose(sum(b.values()), float(g.attrs["effective_bits"]), rel_tol=1e-12),
                  l["name"] + " breakdown sums to effective_bits")
    return j


def flip_in_chunk(path, dataset):
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(1)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes([b[0] ^ 0x04]))


def expect_verify_fails(inspect, path, text_, what):
    r = run([inspect, "--verify", path])
    lines = [ln for ln in r.stderr.splitlines() if ln]
    check(r.returncode == 4, f"{what}: exit {r.returncode}: {r.stderr}")
    check(len(lines) == 1 and text_ in lines[0], f"{what}: one line naming '{text_}': {r.stderr}")


def check_verify(inspect, good, tmp):
    r = run([inspect, good, "--verify"])
    check(r.returncode == 0 and r.stdout.startswith("verify: OK: "), "verify good: " + r.stderr)
    with h5py.File(good, "r") as f:
        n_datasets = []
        f.visititems(lambda n, o: n_datasets.append(n) if isinstance(o, h5py.Dataset) else None)
        n_layers = len(f["layers"])
    check(f"{len(n_datasets)} datasets" in r.stdout and f"{n_layers} layers rebuilt" in r.stdout,
          "verify counts: " + r.stdout)

    def copy(name):
        p = os.path.join(tmp, name)
        shutil.copyfile(good, p)
        return p

    p = copy("tensor-flip.h5")
    flip_in_chunk(p, "tensors/model.embed_tokens.weight")
    expect_verify_fails(inspect, p, "/tensors/model.embed_tokens.weight: unreadable",
                        "flipped byte in a tensor")
    p = copy("codes-flip.h5")
    flip_in_chunk(p, "layers/model.layers.2.mlp.up_proj/codes")
    expect_verify_fails(inspect, p, "/layers/model.layers.2.mlp.up_proj/codes: unreadable",
                        "flipped byte in codes")
    p = copy("shape.h5")
    with h5py.File(p, "a") as f:
        f["layers/model.layers.1.mlp.up_proj"].attrs["d_in"] = np.int64(96)
    expect_verify_fails(inspect, p, "'model.layers.1.mlp.up_proj.weight' has shape [576, 96]",
                        "d_in against config.json")
    p = copy("extra.h5")
    with h5py.File(p, "a") as f:
        f.copy("layers/model.layers.1.mlp.up_proj", "layers/model.layers.9.mlp.up_proj")
    expect_verify_fails(inspect, p, "/layers/model.layers.9.mlp.up_proj is not a linear layer",
                        "a layer the architecture does not have")


def check_fuzz_corpus(inspect, src, tmp):
    """The container fuzzer's seeds (tests/fuzz/corpus/container) are what
    they claim: real containers that verify, written with checksummed
    metadata, and a truncated one refused as such. A flipped byte in an
    object header fails HDF5's checksum: one line, exit 4, no crash."""
    corpus = os.path.join(src, "tests", "fuzz", "corpus", "container")
    names = sorted(os.listdir(corpus))
    check(len(names) >= 3, f"container seed corpus: {names}")
    for name in names:
        path = os.path.join(corpus, name)
        if "truncated" in name:
            expect_verify_fails(inspect, path, "truncated: ", "seed " + name)
            continue
        r = run([inspect, "--verify", path])
        check(r.returncode == 0 and r.stdout.startswith("verify: OK: "),
              f"seed {name}: {r.stderr}")
        with open(path, "rb") as fh:
            check(fh.read(9)[8] >= 2, f"seed {name}: superblock version 2 or later")
        p = os.path.join(tmp, "header-flip-" + name)
        shutil.copyfile(path, p)
        with h5py.File(p, "r") as f:
            addr = h5py.h5o.get_info(f["layers"].id).addr
        with open(p, "r+b") as fh:
            fh.seek(addr + 6)
            b = fh.read(1)
            fh.seek(addr + 6)
            fh.write(bytes([b[0] ^ 0x10]))
        r = run([inspect, "--verify", p])
        lines = [ln for ln in r.stderr.splitlines() if ln]
        check(r.returncode == 4 and len(lines) == 1,
              f"seed {name} with a flipped /layers header byte: exit {r.returncode}: {r.stderr}")


def main():
    mpi_bin, inspect, src = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        default = os.path.join(tmp, "default.h5")
        make_container(mpi_bin, src, default, [])
        sub = os.path.join(tmp, "sub.h5")
        make_container(mpi_bin, src, sub, ["quantize.bits=0.5,0.75,1,2", "quantize.avg_bits=0.9",
                                           "quantize.tricks=centralize,norm_col,norm_row",
                                           "quantize.exclude=*.k_proj", "quantize.encoder=fast"])
        j = check_json(inspect, default)
        check(all(l["quantized"] for l in j["layers"]) and len(j["layers"]) == 28, "28 layers")
        j = check_json(inspect, sub)
        check(sum(not l["quantized"] for l in j["layers"]) == 4, "4 k_proj unquantized")
        check(any(l["bits"] < 1 for l in j["layers"] if l["quantized"]), "sub-bit layers")
        half = os.path.join(tmp, "half.h5")
        make_container(mpi_bin, src, half, ["quantize.side_bits=16",
                                            "quantize.tricks=centralize,norm_col,norm_row"])
        j = check_json(inspect, half)
        check(j["format_version"] == 3, "16-bit side vectors: format_version 3")
        check_verify(inspect, default, tmp)
        r = run([inspect, "--verify", sub])
        check(r.returncode == 0, "verify the sub-bit container: " + r.stderr)
        r = run([inspect, "--verify", half])
        check(r.returncode == 0, "verify the 16-bit side vectors' container: " + r.stderr)
        check_fuzz_corpus(inspect, src, tmp)
    print(f"check_inspect: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""check_reader_hardening.py — crafted containers (copies edited with h5py)
that raana's container reader must refuse with one line naming the layer or
dataset and exit 4, instead of crashing, overflowing a buffer or returning
wrong weights (issue 15, "Container reader hardening"):

- sub-bit layer: m_a = -1000, m_a = 0, m_a = 10^6, m_b = -50, bits = NaN;
- whole-bit layer: bits 4 with 3-bit codes, bits 2.5, packed_bytes off by one,
  codes stored transposed (same element count), a NaN rescale, an infinite mu,
  a missing rescale,
  a held-out column out of range and one held twice;
- a layer with low-rank factors: lowrank_rank 0 and above min(d_in, d_out), a
  factor of the wrong shape, a NaN and an infinity in a factor's half bits,
  a missing factor;
- 16-bit side vectors ([quantize] side_bits = 16): a NaN and an infinity in
  their half bits, a missing mean, an exponent missing or out of range, a row_scale left in
  float32 beside 16-bit rescales, and 16-bit halves in a file that says it is
  format version 2;
- a dataset declared far larger than the file (2^40 bytes, chunks never
  written) as /report/table (raana-inspect's summary and --verify) and as an
  extra tensor (raana-export, which reads every tensor).

The untouched containers still dequantize (a control). Each case runs
raana-inspect --dequantize (or the command named) and checks the exit code,
the single error line and its text.

Usage: /usr/bin/python3 check_reader_hardening.py RAANA_MPI RAANA_INSPECT RAANA_EXPORT SOURCE_DIR
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
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


def make_container(mpi_bin, src, out, extra):
    job = os.path.join(src, "jobs", "kjv-tiny.ini")
    cmd = [mpi_bin, job, "--set", "output.path=" + out] + sum((["--set", s] for s in extra), [])
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if r.returncode != 0:
        sys.exit("raana-mpi failed: " + r.stderr)


def expect(cmd, rc, text, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in r.stderr.splitlines() if ln]
    check(r.returncode == rc, f"{what}: exit {r.returncode}, expected {rc}: {r.stderr}")
    check(len(lines) == (1 if rc else 0) and (rc == 0 or text in lines[0]),
          f"{what}: expected one line with '{text}': {r.stderr}")


def edited(src_path, tmp, name, edit):
    path = os.path.join(tmp, name + ".h5")
    shutil.copyfile(src_path, path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def set_attr(group, key, value):
    def edit(f):
        f["layers"][group].attrs[key] = value
    return edit


def replace(f, path, data):
    del f[path]
    f[path] = data


def main():
    mpi_bin, inspect, export_bin, src = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        whole = os.path.join(tmp, "whole.h5")
        make_container(mpi_bin, src, whole, [])
        sub = os.path.join(tmp, "sub.h5")
        make_container(mpi_bin, src, sub, ["quantize.bits=0.5,0.75,1,2", "quantize.avg_bits=0.9",
                                           "quantize.tricks=centralize,norm_col,norm_row",
                                           "quantize.encoder=fast"])
        lowrank = os.path.join(tmp, "lowrank.h5")
        make_container(mpi_bin, src, lowrank, ["quantize.lowrank_rank=2"])
        half = os.path.join(tmp, "half.h5")
        make_container(mpi_bin, src, half, ["quantize.side_bits=16",
                                            "quantize.tricks=centralize,norm_col,norm_row"])
        out = os.path.join(tmp, "w.f32")
        with h5py.File(lowrank, "r") as f:
            lr_layer = next(n for n in f["layers"] if f["layers"][n].attrs["d_out"] == 64)
            lr_a = f["layers"][lr_layer]["lowrank_a"][...]
        with h5py.File(sub, "r") as f:
            sub_layer = next(n for n in f["layers"] if f["layers"][n].attrs["bits"] < 1
                             and f["layers"][n].attrs["d_in"] == 192)
        with h5py.File(whole, "r") as f:
            held_layer = next(n for n in f["layers"] if f["layers"][n].attrs["n_held"] >= 1)
            d_in = int(f["layers"][held_layer].attrs["d_in"])
            d_out = int(f["layers"][held_layer].attrs["d_out"])
            pb = int(f["layers"][held_layer].attrs["packed_bytes"])
            held_col = int(f["layers"][held_layer]["held_cols"][0])
            held_vals = f["layers"][held_layer]["held_values"][...]
            bits = float(f["layers"][held_layer].attrs["bits"])
        check(bits == 3, "the held layer has 3 bits")

        # controls: the originals decode
        expect([inspect, sub, "--dequantize", sub_layer, out], 0, "", "control sub-bit")
        expect([inspect, whole, "--dequantize", held_layer, out], 0, "", "control whole-bit")
        expect([inspect, lowrank, "--dequantize", lr_layer, out], 0, "", "control low-rank")
        expect([inspect, half, "--dequantize", lr_layer, out], 0, "", "control 16-bit sides")

        out_of_range = "n_held or packed_bytes out of range"
        disagree = "disagree with bits"
        cases = [
            (sub, "m_a_neg", sub_layer, set_attr(sub_layer, "m_a", np.int64(-1000)), out_of_range),
            (sub, "m_a_zero", sub_layer, set_attr(sub_layer, "m_a", np.int64(0)), disagree),
            (sub, "m_a_huge", sub_layer, set_attr(sub_layer, "m_a", np.int64(10**6)), out_of_range),
            (sub, "m_b_neg", sub_layer, set_attr(sub_layer, "m_b", np.int64(-50)), out_of_range),
            (sub, "bits_nan", sub_layer, set_attr(sub_layer, "bits", np.float64("nan")),
             "bits nan is not a supported width"),
            (whole, "bits_4", held_layer, set_attr(held_layer, "bits", np.float64(4)), disagree),
            (whole, "bits_2_5", held_layer, set_attr(held_layer, "bits", np.float64(2.5)),
             "bits 2.5 is not a supported width"),
            (whole, "packed", held_layer, set_attr(held_layer, "packed_bytes", np.int64(pb - 1)),
             f"packed_bytes {pb - 1}"),
            (whole, "transposed", held_layer,
             lambda f: replace(f, f"layers/{held_layer}/codes",
                               f[f"layers/{held_layer}/codes"][...].T.copy()),
             f"codes has shape [{pb}, {d_out}], the layer's attributes imply [{d_out}, {pb}]"),
            (whole, "rescale_nan", held_layer,
             lambda f: replace(f, f"layers/{held_layer}/rescale",
                               np.where(np.arange(d_out) == 5, np.float32("nan"),
                                        f[f"layers/{held_layer}/rescale"][...])),
             "rescale holds NaN at index 5"),
            (whole, "mu_inf", held_layer,
             lambda f: replace(f, f"layers/{held_layer}/mu",
                               np.where(np.arange(d_in) == 7, np.float32("inf"),
                                        f[f"layers/{held_layer}/mu"][...])),
             "mu holds an infinite value at index 7"),
            (whole, "held_range", held_layer,
             lambda f: replace(f, f"layers/{held_layer}/held_cols", np.array([d_out], np.int32)),
             f"held_cols: column {d_out} out of range"),
        ]

        def held_twice(f):
            g = f["layers"][held_layer]
            g.attrs["n_held"] = np.int64(2)
            replace(f, f"layers/{held_layer}/held_cols", np.array([held_col] * 2, np.int32))
            replace(f, f"layers/{held_layer}/held_values", np.concatenate([held_vals] * 2))

        cases.append((whole, "held_twice", held_layer, held_twice,
                      f"held_cols: column {held_col} held twice"))
        rank_range = "lowrank_rank is unreadable or outside 1..min(d_in, d_out)"

        def half_at(bits):
            return lambda f: replace(f, f"layers/{lr_layer}/lowrank_a",
                                     np.where(np.arange(lr_a.size).reshape(lr_a.shape) == 9,
                                              np.uint16(bits), lr_a).astype(np.uint16))

        cases += [
            (lowrank, "rank_zero", lr_layer, set_attr(lr_layer, "lowrank_rank", np.int64(0)),
             rank_range),
            (lowrank, "rank_huge", lr_layer, set_attr(lr_layer, "lowrank_rank", np.int64(65)),
             rank_range),
            (lowrank, "factor_shape", lr_layer,
             lambda f: replace(f, f"layers/{lr_layer}/lowrank_a", lr_a.T.copy()),
             f"lowrank_a has shape [2, 64], the layer's attributes imply [64, 2]"),
            (lowrank, "factor_nan", lr_layer, half_at(0x7E00), "lowrank_a holds NaN at index 9"),
            (lowrank, "factor_inf", lr_layer, half_at(0xFC00),
             "lowrank_a holds an infinite value at index 9"),
            (lowrank, "factor_missing", lr_layer,
             lambda f: f["layers"][lr_layer].__delitem__("lowrank_b"), "lowrank_b is missing"),
        ]
        def side_half_at(name, index, bits):
            def edit(f):
                d = f[f"layers/{lr_layer}/{name}"]
                v, e = d[...], d.attrs["exponent"]
                v[index] = bits
                replace(f, f"layers/{lr_layer}/{name}", v)
                f[f"layers/{lr_layer}/{name}"].attrs["exponent"] = e
            return edit

        def set_exponent(e):
            def edit(f):
                f[f"layers/{lr_layer}/rescale"].attrs["exponent"] = np.int64(e)
            return edit

        def row_scale_f32(f):
            d = f[f"layers/{lr_layer}/row_scale"]
            v = np.ldexp(d[...].view(np.float16).astype(np.float32), int(d.attrs["exponent"]))
            replace(f, f"layers/{lr_layer}/row_scale", v.astype(np.float32))

        def version_2(f):
            f.attrs["format_version"] = np.int64(2)

        exponent = "its exponent attribute is missing, unreadable or outside -200..200"
        cases += [
            (half, "side_nan", lr_layer, side_half_at("rescale", 5, 0x7E00),
             "rescale holds NaN at index 5"),
            (half, "side_inf", lr_layer, side_half_at("mu", 7, 0xFC00),
             "mu holds an infinite value at index 7"),
            (half, "exponent_missing", lr_layer,
             lambda f: f[f"layers/{lr_layer}/rescale"].attrs.__delitem__("exponent"), exponent),
            (half, "exponent_huge", lr_layer, set_exponent(201), exponent),
            (half, "side_missing", lr_layer,
             lambda f: f[f"layers/{lr_layer}"].__delitem__("mu"), f"layers/{lr_layer}/mu is missing"),
            (whole, "rescale_missing", held_layer,
             lambda f: f[f"layers/{held_layer}"].__delitem__("rescale"),
             f"layers/{held_layer}/rescale is missing"),
            (half, "side_mixed", lr_layer, row_scale_f32,
             "row_scale is not stored as 16-bit halves like the layer's rescale"),
            (half, "side_version_2", lr_layer, version_2,
             "rescale is neither float32 nor 16-bit halves (uint16, format version 3 and later; "
             "this file is version 2)"),
        ]
        for base, name, layer, edit, text in cases:
            path = edited(base, tmp, name, edit)
            expect([inspect, path, "--dequantize", layer, out], 4, text, name)

        # datasets declared far larger than the file
        def huge_table(f):
            del f["report/table"]
            f.create_dataset("report/table", shape=(2**40,), dtype=np.uint8, chunks=(2**20,))

        path = edited(whole, tmp, "huge_table", huge_table)
        expect([inspect, path], 4, "/report/table declares 1099511627776 bytes", "huge table")
        expect([inspect, "--verify", path], 4, "/report/table declares 1099511627776 bytes",
               "huge table, --verify")

        def huge_tensor(f):
            d = f.create_dataset("tensors/extra.weight", shape=(2**39,), dtype=np.uint16,
                                 chunks=(2**19,))
            d.attrs["dtype"] = np.bytes_("BF16")

        path = edited(whole, tmp, "huge_tensor", huge_tensor)
        expect([export_bin, path, os.path.join(tmp, "export")], 4,
               "/tensors/extra.weight declares 1099511627776 bytes", "huge tensor, raana-export")
        check(not os.path.exists(os.path.join(tmp, "export")), "nothing exported")
    print(f"check_reader_hardening: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

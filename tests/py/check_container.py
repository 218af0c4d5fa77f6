"""check_container.py — a raana container read with Debian's h5py (and
hdf5plugin) and numpy alone, against raana and against the checkpoint:

- every quantized layer is rebuilt from its codes, rescales, signs, trick
  terms and low-rank factors following docs/FORMAT.md, and matches raana-inspect's dequantization
  to 1e-6 relative; the side vectors (rescale, mu, row_scale) are float32, or
  with [quantize] side_bits = 16 IEEE half bits (uint16) times 2^exponent
  (the dataset's attribute), the largest |half| in [2^14, 2^15);
- format_version is 3 with 16-bit side vectors, else 2 with low-rank
  factors, else 1;
- the stored rotation signs equal the documented generator (rng attribute)
  re-implemented here in numpy, from the layer's key;
- each layer's stored rel_error equals ||What - W|| / ||W|| computed here
  from the original safetensors weights;
- every unquantized tensor holds the checkpoint's bytes in its dtype, and
  config.json / tokenizer.json are the checkpoint's files.
- the HDF5 metadata is checksummed (superblock version 2 or later, so
  object headers are version 2 with checksums).

Usage: /usr/bin/python3 check_container.py CONTAINER RAANA_INSPECT MODEL_DIR
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin.
RAANA_DEQUANTIZED_DIR=DIR (optional): raana-inspect's --dequantize output of
every layer is kept there (dequantized_cache.py), for check_export.py on the
same container to read instead of running raana-inspect once per layer again."""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import hdf5plugin  # noqa: F401  (Debian's; raana's own plugin provides 32015)
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_tensors_numpy import read_model  # noqa: E402
import dequantized_cache  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


# ---- the generator (docs/FORMAT.md "Rotation signs"), in numpy uint64 ----
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def u64(key, stream, counters):
    with np.errstate(over="ignore"):
        base = mix64(np.uint64(key) ^ np.uint64((stream * GOLDEN) & M64))
        return mix64(base + (counters.astype(np.uint64) + np.uint64(1)) * np.uint64(GOLDEN))


def sign_vector(key, stream, d):
    i = np.arange(d)
    words = u64(key, stream, i // 64)
    bits = (words >> (i % 64).astype(np.uint64)) & np.uint64(1)
    return np.where(bits == 1, -1.0, 1.0)


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def layer_key(seed, name):
    return int(mix64(np.uint64(seed ^ fnv1a64(name))))


# ---- decoding ----
def fwht(x):
    """Orthonormal Walsh-Hadamard transform along the last axis (power of two)."""
    x = x.copy()
    n = x.shape[-1]
    h = 1
    while h < n:
        y = x.reshape(x.shape[:-1] + (n // (2 * h), 2, h))
        a, b = y[..., 0, :].copy(), y[..., 1, :].copy()
        y[..., 0, :], y[..., 1, :] = a + b, a - b
        x = y.reshape(x.shape)
        h *= 2
    return x / np.sqrt(n)


def unrotate(v, s1, s2, k):
    """Inverse of: v*s1; v[:k]=H v[:k]; v*s2; v[d-k:]=H v[d-k:] (rows of v)."""
    d = v.shape[-1]
    v = v.copy()
    v[:, d - k:] = fwht(v[:, d - k:])
    v *= s2
    v[:, :k] = fwht(v[:, :k])
    return v * s1


def unpack_codes(packed, n, bits):
    stream = np.unpackbits(packed, axis=1, bitorder="little")[:, : n * bits]
    stream = stream.reshape(packed.shape[0], n, bits).astype(np.int64)
    return (stream << np.arange(bits)).sum(axis=2)


SIDE_VECTORS = ("rescale", "mu", "row_scale")
EXPONENT_MAX = 200  # readers refuse |exponent| above this


def side_vector(g, name):
    """A side vector as float32: stored float32 as is, or uint16 half bits
    h with the dataset attribute exponent e as h * 2^e (exact in float32)."""
    ds = g[name]
    if ds.dtype == np.uint16:
        e = int(ds.attrs["exponent"])
        return np.ldexp(ds[...].view(np.float16).astype(np.float32), e)
    return ds[...].astype(np.float32)


def side_rounding(g, name):
    """Half a unit in the last place of each stored value of a side vector:
    what 16-bit storage may have rounded away (0 for float32)."""
    ds = g[name]
    if ds.dtype != np.uint16:
        return np.zeros(ds.shape)
    h = np.abs(ds[...].view(np.float16))
    return np.ldexp(np.spacing(h).astype(np.float64) / 2, int(ds.attrs["exponent"]))


def check_side_vectors(g, name):
    """16-bit side vectors: an int64 exponent within the readers' bound that
    puts the largest |half| in [2^14, 2^15) (0 when all are zero), finite
    halves; float32 ones carry no exponent. Returns the stored types' names."""
    types = set()
    for t in SIDE_VECTORS:
        if t not in g:
            continue
        ds = g[t]
        types.add(str(ds.dtype))
        if ds.dtype == np.float32:
            check("exponent" not in ds.attrs, f"{name}/{t}: float32 with an exponent")
            continue
        check(ds.dtype == np.uint16, f"{name}/{t}: dtype {ds.dtype}, expected float32 or uint16")
        if ds.dtype != np.uint16:
            continue
        check("exponent" in ds.attrs and ds.attrs["exponent"].dtype == np.int64,
              f"{name}/{t}: an int64 exponent attribute")
        if "exponent" not in ds.attrs:
            continue
        e = int(ds.attrs["exponent"])
        h = np.abs(ds[...].view(np.float16).astype(np.float32))
        check(abs(e) <= EXPONENT_MAX, f"{name}/{t}: exponent {e} beyond +-{EXPONENT_MAX}")
        check(np.all(np.isfinite(h)), f"{name}/{t}: non-finite halves")
        top = float(h.max(initial=0))
        check((2.0 ** 14 <= top < 2.0 ** 15) if top else e == 0,
              f"{name}/{t}: largest |half| {top} with exponent {e}, expected in [2^14, 2^15)")
    return types


def dequantize(g, factors=True):
    a = g.attrs
    d_in, d_out, bits = int(a["d_in"]), int(a["d_out"]), float(a["bits"])
    cb, n_kept, k = int(a["code_bits"]), int(a["n_kept"]), int(a["rotation_k"])
    m_a, m_b = int(a["m_a"]), int(a["m_b"])
    codes = unpack_codes(g["codes"][...], n_kept, cb)
    vals = (codes - (2 ** cb - 1) / 2.0) * side_vector(g, "rescale")[:, None].astype(np.float64)
    rot = np.zeros((d_out, d_in))
    if bits >= 1:
        rot[:, :] = vals
    else:  # kept coordinates: region A's first m_a, region B's first m_b
        rot[:, :m_a] = vals[:, :m_a] * ((d_in - k) / m_a if m_a else 0)
        rot[:, d_in - k: d_in - k + m_b] = vals[:, m_a:] * (k / m_b)
    signs = np.unpackbits(g["signs"][...], axis=1, bitorder="little")[:, :d_in]
    s1, s2 = 1.0 - 2.0 * signs[0], 1.0 - 2.0 * signs[1]
    w = unrotate(rot, s1, s2, k)
    if "row_scale" in g:
        w *= side_vector(g, "row_scale")
    if "mu" in g:
        w += side_vector(g, "mu")
    for c, col in zip(g["held_cols"][...], g["held_values"][...]):
        w[c] = col
    if factors and "lowrank_rank" in a:  # IEEE half bits, added to every row
        r = int(a["lowrank_rank"])
        fa = g["lowrank_a"][...].view(np.float16).astype(np.float64)
        fb = g["lowrank_b"][...].view(np.float16).astype(np.float64)
        assert fa.shape == (d_out, r) and fb.shape == (r, d_in), "factor shapes"
        w += fa @ fb
    return w, s1, s2


def main():
    container, inspect, model_dir = sys.argv[1:4]
    with open(container, "rb") as fh:
        head = fh.read(9)
    check(head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] >= 2,
          f"superblock version {head[8]} (checksummed metadata needs 2 or later)")
    f = h5py.File(container, "r")
    check(f.attrs["format"] == b"raana-container", "format attribute")
    factors = any("lowrank_rank" in f["layers"][n].attrs for n in f["layers"])
    types = set().union(*(check_side_vectors(f["layers"][n], n) for n in f["layers"]))
    check(len(types) <= 1, f"side vectors all 16-bit or all float32: {sorted(types)}")
    version = 3 if "uint16" in types else 2 if factors else 1
    check(int(f.attrs["format_version"]) == version,
          f"format_version {int(f.attrs['format_version'])}: expected {version} (3 with 16-bit "
          "side vectors, else 2 with low-rank factors, else 1)")
    seed = int(f["provenance"].attrs["seed"])
    weights = read_model(model_dir)
    layers = f["layers"]
    worst = 0.0
    keep = os.environ.get("RAANA_DEQUANTIZED_DIR")
    if keep:
        dequantized_cache.start(keep)
    with tempfile.TemporaryDirectory() as tmp:
        for name in layers:
            g = layers[name]
            w, s1, s2 = dequantize(g)
            out = dequantized_cache.path(keep, name) if keep else os.path.join(tmp, "w.f32")
            subprocess.run([inspect, container, "--dequantize", name, out], check=True,
                           stdout=subprocess.DEVNULL)
            ref = np.fromfile(out, dtype="<f4").reshape(w.shape).astype(np.float64)
            rel = np.linalg.norm(w - ref) / np.linalg.norm(ref)
            worst = max(worst, rel)
            check(rel <= 1e-6, f"{name}: numpy vs raana dequantization, rel {rel:.2e}")
            key = int(g.attrs["key"])
            check(key == layer_key(seed, name), f"{name}: key from (seed, name)")
            d = w.shape[1]
            check(np.array_equal(s1, sign_vector(key, 1, d)) and
                  np.array_equal(s2, sign_vector(key, 2, d)), f"{name}: signs = generator")
            orig = weights[name + ".weight"].astype(np.float64)
            err = np.linalg.norm(ref - orig) / np.linalg.norm(orig)
            check(abs(err - g.attrs["rel_error"]) <= 1e-5 * max(err, 1e-3),
                  f"{name}: rel_error {g.attrs['rel_error']:.6g} vs numpy {err:.6g}")
    print(f"{len(layers)} layers rebuilt with numpy; worst relative difference {worst:.2e}")
    if keep:
        dequantized_cache.finish(keep, container, inspect, list(layers))
    # unquantized tensors: the checkpoint's values
    tensors = f["tensors"]
    for name in tensors:
        t = tensors[name]
        dtype = t.attrs["dtype"].decode()
        raw = t[...]
        if dtype == "BF16":
            vals = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F16":
            vals = raw.view(np.float16).astype(np.float32)
        else:
            vals = raw
        check(np.array_equal(vals, weights[name]), f"tensor {name} equals the checkpoint")
    quantized = {n + ".weight" for n in layers}
    check(set(tensors) | quantized == set(weights), "every checkpoint tensor is stored")
    for fname in ("config.json", "tokenizer.json"):
        with open(os.path.join(model_dir, fname), "rb") as fh:
            check(f["model"][fname][...].tobytes() == fh.read(), f"{fname} stored verbatim")
    names = [n.decode() for n in f["allocation/name"][...]]
    check(sorted(n for n, q in zip(names, f["allocation/quantized"][...]) if q) == sorted(layers),
          "allocation table lists the quantized layers")
    print(f"check_container.py: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""check_no_plugin.py — a raana container's small metadata datasets open in any
HDF5 reader, without raana's zstd plugin (docs/FORMAT.md, "Reading it").

Reads the container twice, each time in a fresh python3 with Debian's h5py:
once with HDF5_PLUGIN_PATH unset (and hdf5plugin imported, which on Debian
ships no filters), once with HDF5_PLUGIN_PATH=PLUGIN_DIR. Checks that
 - without the plugin, /config.ini, every /model/* file, /report/table,
   every /allocation column and /calibration/tokens read, and equal what the
   plugin-enabled read gives;
 - without the plugin, a zstd dataset (codes) does NOT read (so the first
   read really had no zstd filter);
 - those metadata datasets are stored with deflate (filter 1) + Fletcher-32
   (filter 3), and codes, rescales and /tensors with zstd (32015).

Usage: /usr/bin/python3 check_no_plugin.py CONTAINER.h5 PLUGIN_DIR"""
import hashlib
import json
import os
import subprocess
import sys

DEFLATE, FLETCHER32, ZSTD = 1, 3, 32015


def metadata_paths(f):
    paths = ["config.ini", "report/table", "calibration/tokens"]
    paths += ["model/" + k for k in f["model"]]
    paths += ["allocation/" + k for k in f["allocation"]]
    return paths


def filters(dset):
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def dump(path):
    """Child: every metadata dataset as JSON-able values, plus whether a
    zstd dataset reads."""
    try:
        import hdf5plugin  # noqa: F401  (Debian's ships no filters)
    except ImportError:
        pass
    import h5py
    import numpy as np

    out = {"values": {}, "filters": {}}
    with h5py.File(path, "r") as f:
        for p in metadata_paths(f):
            data = f[p][...]
            if data.dtype.kind == "S":
                value = [x.decode() for x in data]
            elif data.dtype == np.uint8:
                value = hashlib.sha256(data.tobytes()).hexdigest()
            else:
                value = data.tolist()
            out["values"][p] = value
            out["filters"][p] = filters(f[p])
        out["text"] = {p: f[p][...].tobytes().decode() for p in ("config.ini", "model/config.json")}
        layer = next(iter(f["layers"]))
        out["zstd_filters"] = {
            "codes": filters(f["layers"][layer]["codes"]),
            "rescale": filters(f["layers"][layer]["rescale"]),
            "tensors": [filters(f["tensors"][t]) for t in f["tensors"]],
        }
        try:
            f["layers"][layer]["codes"][...]
            out["codes_readable"] = True
        except OSError:
            out["codes_readable"] = False
    print(json.dumps(out))


def read_with(path, plugin_dir):
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    if plugin_dir:
        env["HDF5_PLUGIN_PATH"] = plugin_dir
    res = subprocess.run([sys.executable, __file__, "--dump", path], env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"check_no_plugin.py: reading {path} "
                 f"{'with' if plugin_dir else 'without'} the plugin failed:\n{res.stderr}")
    return json.loads(res.stdout)


def main():
    if sys.argv[1] == "--dump":
        dump(sys.argv[2])
        return
    path, plugin_dir = sys.argv[1], sys.argv[2]
    bare, full = read_with(path, None), read_with(path, plugin_dir)
    bad = []
    if bare["codes_readable"]:
        bad.append("codes read without the plugin: the test cannot tell a missing filter")
    if not full["codes_readable"]:
        bad.append("codes do not read even with the plugin")
    for p, value in full["values"].items():
        if bare["values"].get(p) != value:
            bad.append(f"/{p} reads differently without the plugin")
        if full["filters"][p] != [DEFLATE, FLETCHER32]:
            bad.append(f"/{p}: filters {full['filters'][p]}, expected deflate + Fletcher-32")
    z = full["zstd_filters"]
    for name, fl in [("codes", z["codes"]), ("rescale", z["rescale"])] + \
            [("tensor", t) for t in z["tensors"]]:
        if fl != [ZSTD, FLETCHER32]:
            bad.append(f"{name}: filters {fl}, expected zstd + Fletcher-32")
    names, bits = full["values"]["allocation/name"], full["values"]["allocation/bits"]
    if not names or len(names) != len(bits) or "model/config.json" not in full["values"]:
        bad.append("allocation table or model/config.json missing")
    if bare["text"] != full["text"]:
        bad.append("/config.ini or /model/config.json reads differently without the plugin")
    json.loads(bare["text"]["model/config.json"])  # valid JSON as read without the plugin
    if "[model]" not in bare["text"]["config.ini"]:
        bad.append("/config.ini read without the plugin is not the INI text")
    for b in bad:
        print("check_no_plugin.py:", b, file=sys.stderr)
    print(f"check_no_plugin.py: {len(full['values'])} metadata datasets, {len(bad)} problems")
    sys.exit(1 if bad else 0)


main()

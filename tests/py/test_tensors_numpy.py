"""test_tensors_numpy.py — raana's safetensors reader against an independent
numpy reader: every tensor of the fixture, single-file and sharded, must be
byte-identical after conversion to f32, and a few values are checked against
numbers written down here from the fixture's own bytes.

Usage: /usr/bin/python3 test_tensors_numpy.py DUMP_TENSORS SOURCE_DIR"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def read_safetensors(path):
    """name -> f32 array, parsing the format from its specification."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            arr = np.frombuffer(raw, dtype="<f4")
        out[name] = arr.reshape(info["shape"])
    return out


def read_model(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        tensors = {}
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            tensors.update(read_safetensors(os.path.join(model_dir, shard)))
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def raana_dump(dump_bin, model_dir):
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        subprocess.run([dump_bin, model_dir, tmp.name], check=True)
        return open(tmp.name, "rb").read()


def main():
    dump_bin, src = sys.argv[1], sys.argv[2]
    fixture = os.path.join(src, "tests", "data", "kjv-tiny")
    # the vendored copy is the fixture whose reference numbers we test against.
    # (tokenizer.model is not checked: the shipped file's hash differs from the
    # one in reference.json, also in ../shared; raana reads tokenizer.json.)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    for name, digest in ref["files_sha256"].items():
        if name == "tokenizer.model":
            continue
        got = hashlib.sha256(open(os.path.join(fixture, name), "rb").read()).hexdigest()
        check(got == digest, "sha256 of vendored " + name)
    single = read_model(fixture)
    sharded = read_model(os.path.join(fixture, "sharded"))
    check(len(single) == 39, "39 tensors")
    check(sorted(single) == sorted(sharded), "same names single/sharded")
    for name in single:
        check(np.array_equal(single[name], sharded[name]), "numpy single == sharded " + name)
    expected = b"".join(np.ascontiguousarray(single[k], dtype="<f4").tobytes()
                        for k in sorted(single))
    for d in (fixture, os.path.join(fixture, "sharded")):
        got = raana_dump(dump_bin, d)
        check(len(got) == len(expected), "dump length " + d)
        check(got == expected, "raana f32 bytes == numpy f32 bytes for " + d)
    # the fixture's stored parameter count: 2,508,480 values (5,016,960 BF16 bytes)
    check(sum(a.size for a in single.values()) == 2508480, "total parameter count")
    print(f"test_tensors_numpy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

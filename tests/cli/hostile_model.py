#!/usr/bin/env python3
"""hostile_model.py — writes a variant of the kjv-tiny checkpoint for the
hostile-input tests: the fixture's files, with model.safetensors rewritten.

  hostile_model.py SRC_DIR DST_DIR big-weight TENSOR   one weight := bf16 0x7F7F (3.39e38)
  hostile_model.py SRC_DIR DST_DIR extra-tensor NAME   adds a 1-element F32 tensor NAME
"""
import json
import os
import shutil
import struct
import sys


def read_st(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8 : 8 + n]), bytearray(blob[8 + n :])


def write_st(path, header, data):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))


def main():
    src, dst, what, arg = sys.argv[1:5]
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if os.path.isfile(os.path.join(src, name)) and name != "model.safetensors":
            shutil.copy(os.path.join(src, name), dst)
    header, data = read_st(os.path.join(src, "model.safetensors"))
    if what == "big-weight":
        begin = header[arg]["data_offsets"][0]
        assert header[arg]["dtype"] == "BF16"
        data[begin : begin + 2] = struct.pack("<H", 0x7F7F)
    elif what == "extra-tensor":
        header[arg] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
        data += struct.pack("<f", 1.0)
    else:
        sys.exit("unknown variant " + what)
    write_st(os.path.join(dst, "model.safetensors"), header, data)


main()

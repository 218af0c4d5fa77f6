#!/usr/bin/env python3
"""hostile_model.py — makes the hostile variants of the kjv-tiny checkpoint
that tests/cli/test_hostile_inputs.sh feeds to raana (issue 15).

  hostile_model.py copy SRC DST              DST := the files of SRC
  hostile_model.py big-weight DIR TENSOR     its first weight := bf16 0x7F7F (3.39e38)
  hostile_model.py extra-tensor DIR NAME     adds a 1-element F32 tensor NAME
  hostile_model.py f32-weight DIR TENSOR     stores BF16 TENSOR as F32 (same values)
  hostile_model.py vocab-id DIR TOKEN ID     tokenizer.json: vocab[TOKEN] := ID
  hostile_model.py config-append DIR TEXT    config.json: TEXT (raw JSON members,
                                             e.g. '"rope_theta": 1e999') added last
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


def copy(src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), dst)


def edit_safetensors(directory, edit):
    path = os.path.join(directory, "model.safetensors")
    header, data = read_st(path)
    data = edit(header, data)
    write_st(path, header, data)


def big_weight(header, data, tensor):
    begin = header[tensor]["data_offsets"][0]
    assert header[tensor]["dtype"] == "BF16"
    data[begin : begin + 2] = struct.pack("<H", 0x7F7F)
    return data


def extra_tensor(header, data, name):
    header[name] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
    return data + struct.pack("<f", 1.0)


def f32_weight(header, data, tensor):
    begin, end = header[tensor]["data_offsets"]
    assert header[tensor]["dtype"] == "BF16"
    n = (end - begin) // 2
    halves = struct.unpack(f"<{n}H", data[begin:end])
    words = struct.pack(f"<{n}I", *(h << 16 for h in halves))  # bf16 -> f32 is exact
    header[tensor] = dict(header[tensor], dtype="F32", data_offsets=[len(data), len(data) + 4 * n])
    return data + words


def main():
    what, directory, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if what == "copy":
        copy(directory, args[0])
    elif what == "big-weight":
        edit_safetensors(directory, lambda h, d: big_weight(h, d, args[0]))
    elif what == "f32-weight":
        edit_safetensors(directory, lambda h, d: f32_weight(h, d, args[0]))
    elif what == "extra-tensor":
        edit_safetensors(directory, lambda h, d: extra_tensor(h, d, args[0]))
    elif what == "vocab-id":
        path = os.path.join(directory, "tokenizer.json")
        with open(path) as f:
            tok = json.load(f)
        tok["model"]["vocab"][args[0]] = int(args[1])
        with open(path, "w") as f:
            json.dump(tok, f)
    elif what == "config-append":
        path = os.path.join(directory, "config.json")
        with open(path) as f:
            text = f.read().rstrip()
        assert text.endswith("}")
        with open(path, "w") as f:
            f.write(text[:-1].rstrip() + ",\n  " + args[0] + "\n}\n")
    else:
        sys.exit("unknown variant " + what)


main()

"""check_consumer.py — the installed-library consumer's dequantization
(tests/consumer/consumer.c, built against `cmake --install` output) against
the independent numpy reader of check_container.py (h5py + numpy, following
docs/FORMAT.md): the weight within 1e-6 relative, the bits and the
effective bits equal to the layer's stored attributes.

Usage: /usr/bin/python3 check_consumer.py CONTAINER OUT.f32 "CONSUMER STDOUT"
HDF5_PLUGIN_PATH must name the directory of raana's zstd plugin."""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_container import dequantize  # noqa: E402


def main():
    container, out, line = sys.argv[1:4]
    name, d_out, d_in, bits, effective = line.split()
    failed = 0
    with h5py.File(container, "r") as f:
        g = f["layers"][name]
        want, _, _ = dequantize(g)
        got = np.fromfile(out, dtype="<f4").astype(np.float64)
        checks = [
            (got.size == want.size and want.shape == (int(d_out), int(d_in)),
             f"shape {d_out}x{d_in}, {got.size} values; numpy {want.shape}"),
            (float(bits) == float(g.attrs["bits"]), f"bits {bits}"),
            (float(effective) == float(g.attrs["effective_bits"]),
             f"effective bits {effective} vs {float(g.attrs['effective_bits'])!r}"),
        ]
        if got.size == want.size:
            rel = np.linalg.norm(got.reshape(want.shape) - want) / np.linalg.norm(want)
            checks.append((rel < 1e-6, f"{name}: relative difference {rel:.3g} to numpy"))
    for good, what in checks:
        if not good:
            failed += 1
            print("FAIL:", what, file=sys.stderr)
    print(f"check_consumer.py: {name}: {len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

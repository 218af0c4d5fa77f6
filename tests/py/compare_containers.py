"""compare_containers.py — two raana containers hold the same thing: the same
groups, datasets (shape, type, filters, chunking and bytes) and attributes,
everywhere except /provenance (date, host, rank count, timings, resume
counts), which docs/FORMAT.md documents as the only run-specific group.

Usage: /usr/bin/python3 compare_containers.py A.h5 B.h5 [--ignore NAME]...
(exit 1 on a difference; --ignore skips one more top-level object, e.g.
config.ini when the runs differ only in a setting such as [run] threads)"""
import sys

import h5py
import numpy as np

RUN_SPECIFIC = "provenance"


def describe(f, ignored):
    """path -> description of every object outside /provenance and ignored."""
    out = {}

    def attrs(obj):
        return {k: np.asarray(v).tobytes() + str(np.asarray(v).dtype).encode()
                for k, v in obj.attrs.items()}

    out["/"] = ("group", attrs(f))

    def visit(name, obj):
        if name.split("/")[0] in (RUN_SPECIFIC, *ignored):
            return
        if isinstance(obj, h5py.Dataset):
            plist = obj.id.get_create_plist()
            filters = [plist.get_filter(i)[:3] for i in range(plist.get_nfilters())]
            out[name] = ("dataset", obj.shape, str(obj.dtype), obj.chunks, str(filters),
                         obj[...].tobytes(), attrs(obj))
        else:
            out[name] = ("group", attrs(obj))

    f.visititems(visit)
    return out


def main():
    args = sys.argv[3:]
    ignored = [args[i + 1] for i in range(0, len(args) - 1, 2) if args[i] == "--ignore"]
    a, b = (describe(h5py.File(p, "r"), ignored) for p in sys.argv[1:3])
    diffs = sorted(set(a) ^ set(b))
    for name in diffs:
        print(f"only in {'A' if name in a else 'B'}: {name}", file=sys.stderr)
    n_diff = len(diffs)
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            n_diff += 1
            print(f"differs: {name}", file=sys.stderr)
    print(f"compare_containers.py: {len(a)} objects, {n_diff} differences")
    sys.exit(1 if n_diff else 0)


main()

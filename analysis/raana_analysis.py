"""raana_analysis.py — what layers.py and sweep.py share: finding raana's
zstd HDF5 plugin, reading a container into the `raana-inspect --json` layout
(docs/FORMAT.md is the schema; notes on the layout in analysis/README.md),
the per-layer bit breakdown of docs/FORMAT.md "Bits, honestly counted",
errors with exit codes, and output files written whole or not at all.

Only Debian's python3-h5py, python3-hdf5plugin, python3-numpy and
python3-matplotlib are used."""
import glob
import importlib.util
import json
import math
import os
import re
import shutil
import sys

# exit codes, as raana's tools use them (README): 2 usage (or a missing
# Python package), 4 bad input, 5 output I/O
EXIT_USAGE = 2
EXIT_INPUT = 4
EXIT_IO = 5


def _require(modules):
    """One clear line instead of a traceback when a package is missing."""
    for module, package in modules:
        if importlib.util.find_spec(module) is None:
            print(f"{os.path.basename(sys.argv[0])}: error: the Python module {module} is missing "
                  f"(Debian: apt-get install {package}; run the scripts with /usr/bin/python3)",
                  file=sys.stderr)
            sys.exit(EXIT_USAGE)


_require([("numpy", "python3-numpy"), ("h5py", "python3-h5py"),
          ("matplotlib", "python3-matplotlib")])

import h5py  # noqa: E402
import numpy as np  # noqa: E402

try:  # a pip hdf5plugin provides zstd (32015) itself; Debian's provides nothing
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - the scripts still work with raana's plugin
    hdf5plugin = None

ZSTD_FILTER_ID = 32015
PLUGIN_FILE = "libraana_h5zstd.so"
# the newest: 1 is plain, 2 adds low-rank factors, 3 stores the side vectors
# (rescale, mu, row_scale) in 16 bits; all read the same here, the side
# vectors counted at their stored width (no side vector's values are read)
FORMAT_VERSION = 3

# the plan's order of the linear layers inside a decoder block
KIND_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BREAKDOWN_PARTS = ["codes", "rescales", "tricks", "signs"]


class AnalysisError(Exception):
    """One clear message and the exit code the script ends with."""

    def __init__(self, message, code=EXIT_INPUT):
        super().__init__(message)
        self.code = code


def run_main(prog, main):
    """Runs main(); an AnalysisError becomes one line `PROG: error: MSG` on
    stderr and its exit code."""
    try:
        main()
    except AnalysisError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(e.code)


# ---------------------------------------------------------------- the plugin

_plugin_searched = []  # directories looked at, for the error message


def _candidate_plugin_dirs():
    """Where raana's plugin usually is: this checkout's build trees, next to
    a raana-mpi on PATH (build tree or installed prefix), and the prefix these
    scripts are installed under (PREFIX/share/raana-mpi/analysis)."""
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    dirs = [os.path.join(repo, "build", "hdf5-plugin")]
    dirs += sorted(glob.glob(os.path.join(repo, "build*", "hdf5-plugin")))
    tool = shutil.which("raana-mpi")
    if tool:
        bindir = os.path.dirname(os.path.realpath(tool))
        dirs.append(os.path.join(bindir, "hdf5-plugin"))
        prefix = os.path.dirname(bindir)
        dirs.append(os.path.join(prefix, "lib", "hdf5", "plugin"))
        dirs += sorted(glob.glob(os.path.join(prefix, "lib", "*", "hdf5", "plugin")))
    # installed as PREFIX/share/raana-mpi/analysis/
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    dirs.append(os.path.join(prefix, "lib", "hdf5", "plugin"))
    unique = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def zstd_available():
    return bool(h5py.h5z.filter_avail(ZSTD_FILTER_ID))


def setup_plugin(plugin_dir=None):
    """Makes the zstd filter readable. An explicit --plugin-dir must hold
    raana's plugin; otherwise HDF5_PLUGIN_PATH (read by HDF5 itself) and the
    usual places are tried. Finding nothing is not yet an error: a container
    whose needed datasets are unfiltered reads without it, and a filtered
    one fails in read_dataset() with a message saying what to do."""
    if plugin_dir is not None:
        if not os.path.isfile(os.path.join(plugin_dir, PLUGIN_FILE)):
            raise AnalysisError(f"--plugin-dir {plugin_dir}: no {PLUGIN_FILE} there "
                                "(it is in BUILD/hdf5-plugin or PREFIX/lib/hdf5/plugin)",
                                EXIT_USAGE)
        h5py.h5pl.prepend(os.path.abspath(plugin_dir).encode())
        if not zstd_available():
            raise AnalysisError(f"--plugin-dir {plugin_dir}: HDF5 could not load "
                                f"{PLUGIN_FILE} from there", EXIT_USAGE)
        return plugin_dir
    if zstd_available():
        return os.environ.get("HDF5_PLUGIN_PATH", "(already registered)")
    for d in _candidate_plugin_dirs():
        _plugin_searched.append(d)
        if os.path.isfile(os.path.join(d, PLUGIN_FILE)):
            h5py.h5pl.prepend(d.encode())
            if zstd_available():
                return d
    return None


def _filters(dset):
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def read_dataset(dset, path):
    """dset[...], or a clear error when it needs the zstd plugin we lack."""
    if ZSTD_FILTER_ID in _filters(dset) and not zstd_available():
        looked = ", ".join(_plugin_searched) or "nowhere"
        raise AnalysisError(
            f"{path}: {dset.name} is zstd-compressed (HDF5 filter {ZSTD_FILTER_ID}) and raana's "
            f"plugin {PLUGIN_FILE} was not found (looked in HDF5_PLUGIN_PATH and {looked}); "
            "pass --plugin-dir BUILD/hdf5-plugin or PREFIX/lib/hdf5/plugin, "
            "or set HDF5_PLUGIN_PATH",
            EXIT_INPUT)
    try:
        return dset[...]
    except OSError as e:
        raise AnalysisError(f"{path}: cannot read {dset.name}: {e}") from None


# ------------------------------------------------------------- the container

def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _number(value):
    v = np.asarray(value)
    if v.shape != ():
        raise ValueError("not a scalar")
    return v.item()


def _attr(obj, key, path, convert=_number):
    if key not in obj.attrs:
        raise AnalysisError(f"{path}: {obj.name} lacks attribute '{key}'")
    try:
        return convert(obj.attrs[key])
    except (ValueError, TypeError):
        raise AnalysisError(
            f"{path}: {obj.name} attribute '{key}' has an unexpected type") from None


def layer_block_and_kind(name):
    """model.layers.3.mlp.down_proj -> (3, "down_proj"); block None outside blocks.
    An expert's projection keeps its expert, so that plots and tables show bits
    per expert: model.layers.3.mlp.experts.5.down_proj -> (3, "e5.down_proj")."""
    m = re.search(r"\.layers\.(\d+)\.", name)
    e = re.search(r"\.experts\.(\d+)\.([^.]+)$", name)
    return (int(m.group(1)) if m else None), (f"e{e.group(1)}.{e.group(2)}" if e
                                              else name.rsplit(".", 1)[-1])


def short_kind(kind):
    return kind[:-len("_proj")] if kind.endswith("_proj") else kind


def side_bits(group, name, path):
    """Stored bits per value of a side vector (rescale, mu, row_scale): 32
    for float32, 16 for IEEE half bits (uint16) times 2^exponent (the
    dataset's attribute); from the dataset's type, no data is read."""
    dset = group[name]
    if not isinstance(dset, h5py.Dataset):
        raise AnalysisError(f"{path}: {group.name}/{name} is not a dataset")
    if dset.dtype == np.float32:
        return 32
    if dset.dtype == np.uint16 and "exponent" in dset.attrs:
        return 16
    raise AnalysisError(f"{path}: {dset.name} has type {dset.dtype}, expected float32 or "
                        "uint16 with an exponent attribute")


def bits_breakdown(group, d_in, d_out, path):
    """Stored bits per weight of one quantized layer, by what they store
    (docs/FORMAT.md "Bits, honestly counted"), from its /layers attributes
    and the side vectors' stored widths."""
    packed = _attr(group, "packed_bytes", path)
    n_held = _attr(group, "n_held", path)
    if "rescale" not in group:
        raise AnalysisError(f"{path}: {group.name} has no rescale dataset")
    per_input = d_in * sum(side_bits(group, t, path) for t in ("mu", "row_scale") if t in group)
    weights = d_in * d_out
    out = {
        "codes": 8 * packed * d_out / weights,
        "rescales": side_bits(group, "rescale", path) * d_out / weights,
        "tricks": (per_input + n_held * (32 * d_in + 32)) / weights,
        "signs": 16 * math.ceil(d_in / 8) / weights,
    }
    rank = int(group.attrs.get("lowrank_rank", 0))
    if rank > 0:  # low-rank factors A, B: 16 bits per entry
        out["factors"] = 16 * rank * (d_in + d_out) / weights
    return out


def _open(path):
    if not os.path.isfile(path):
        raise AnalysisError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise AnalysisError(f"{path}: not a readable HDF5 file ({e})") from None


def _check_format(f, path):
    fmt = _text(f.attrs.get("format", b""))
    if fmt != "raana-container":
        raise AnalysisError(f"{path}: not a raana container (format attribute '{fmt}')")
    version = _attr(f, "format_version", path)
    if version not in range(1, FORMAT_VERSION + 1):
        raise AnalysisError(f"{path}: container format version {version}; these scripts "
                            f"read versions 1 to {FORMAT_VERSION}")


def _group(f, name, path):
    if name not in f or not isinstance(f[name], h5py.Group):
        raise AnalysisError(f"{path}: no /{name} group")
    return f[name]


def read_summary(f, path):
    """The root, /report and /allocation attributes (no dataset is read)."""
    _check_format(f, path)
    report = _group(f, "report", path)
    alloc = _group(f, "allocation", path)
    return {
        "path": path,
        "format": _text(f.attrs["format"]),
        "format_version": _attr(f, "format_version", path),
        "model_type": _attr(f, "model_type", path, _text),
        "checkpoint_fingerprint": _attr(f, "checkpoint_fingerprint", path, _text)
        if "checkpoint_fingerprint" in f.attrs else None,
        "report": {k: _attr(report, k, path) for k in
                   ("target_avg_bits", "achieved_avg_bits", "effective_bits_quantized",
                    "effective_bits_model")},
        "allocation": {
            "avg_bits": _attr(alloc, "avg_bits", path),
            "candidates": [float(c) for c in
                           np.atleast_1d(_attr(alloc, "candidates", path, np.asarray))],
            "achieved_avg_bits": _attr(alloc, "achieved_avg_bits", path),
            "modelled_error": _attr(alloc, "modelled_error", path),
            "lower_bound": _attr(alloc, "lower_bound", path),
            "method": _attr(alloc, "method", path, _text),
        },
    }


def _calibration(f, path):
    cal = _group(f, "calibration", path)
    out = {"loss": _attr(cal, "loss", path), "source": _attr(cal, "source", path, _text),
           "fingerprint": _attr(cal, "fingerprint", path, _text)}
    if "tokens" in cal and len(cal["tokens"].shape) == 2:
        out["windows"], out["seq_len"] = (int(n) for n in cal["tokens"].shape)
    return out


ALLOCATION_COLUMNS = ["name", "d_in", "d_out", "quantized", "bits", "coef", "rel_error",
                      "effective_bits"]


def read_layers(f, path):
    """Every layer of /allocation in plan order, with its bit breakdown."""
    alloc = f["allocation"]
    cols = {}
    for c in ALLOCATION_COLUMNS:
        if c not in alloc or not isinstance(alloc[c], h5py.Dataset):
            raise AnalysisError(f"{path}: no /allocation/{c} column")
        cols[c] = read_dataset(alloc[c], path)
    n = len(cols["name"])
    if any(len(v) != n for v in cols.values()):
        raise AnalysisError(f"{path}: the /allocation columns differ in length")
    layers = []
    for i in range(n):
        name = _text(cols["name"][i]).rstrip("\0")
        block, kind = layer_block_and_kind(name)
        d_in, d_out = int(cols["d_in"][i]), int(cols["d_out"][i])
        quantized = bool(cols["quantized"][i])
        breakdown = None
        if quantized:
            gpath = f"layers/{name}"
            if gpath not in f:
                raise AnalysisError(f"{path}: quantized layer {name} has no /{gpath} group")
            breakdown = bits_breakdown(f[gpath], d_in, d_out, path)
        layers.append({
            "name": name, "block": block, "kind": kind, "d_in": d_in, "d_out": d_out,
            "quantized": quantized, "bits": float(cols["bits"][i]),
            "coef": float(cols["coef"][i]), "rel_error": float(cols["rel_error"][i]),
            "effective_bits": float(cols["effective_bits"][i]), "bits_breakdown": breakdown,
        })
    return layers


def breakdown_parts(layers):
    """BREAKDOWN_PARTS, plus "factors" when a layer has low-rank factors."""
    has_factors = any(la["quantized"] and "factors" in la["bits_breakdown"] for la in layers)
    return BREAKDOWN_PARTS + (["factors"] if has_factors else [])


def total_breakdown(layers):
    """The size-weighted mean breakdown over the quantized layers: the parts
    of /report effective_bits_quantized (breakdown_parts)."""
    q = [la for la in layers if la["quantized"]]
    weights = sum(la["d_in"] * la["d_out"] for la in q)
    if weights == 0:
        return None
    return {p: sum(la["bits_breakdown"].get(p, 0.0) * la["d_in"] * la["d_out"] for la in q)
            / weights for p in breakdown_parts(layers)}


def read_container(path, with_layers=True):
    """The container in raana-inspect --json's layout (interfaces)."""
    with _open(path) as f:
        try:
            out = read_summary(f, path)
            if with_layers:
                out["calibration"] = _calibration(f, path)
                out["layers"] = read_layers(f, path)
        except KeyError as e:
            raise AnalysisError(f"{path}: missing object ({e})") from None
    return out


# ------------------------------------------------------------------ outputs

def prepare_out_dir(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise AnalysisError(f"--out {out_dir}: {e.strerror}", EXIT_IO) from None


def write_atomically(out_dir, name, write):
    """write(tmp_path) then rename to out_dir/name: a file there is whole."""
    final = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, f".{name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, final)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise AnalysisError(f"{final}: {e.strerror or e}", EXIT_IO) from None
    return final


def write_text(out_dir, name, text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return write_atomically(out_dir, name, write)


def write_json(out_dir, name, obj):
    return write_text(out_dir, name, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def save_figure(fig, out_dir, name):
    import matplotlib.pyplot as plt
    try:
        return write_atomically(out_dir, name, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    finally:
        plt.close(fig)


def fmt(value, spec):
    """Markdown cell: the number formatted, or a dash when absent."""
    return "—" if value is None else format(value, spec)

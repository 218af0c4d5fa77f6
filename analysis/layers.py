#!/usr/bin/python3
"""layers.py — one raana container, layer by layer: where AllocateBits put
the bits and what they bought.

Writes into --out DIR:
  bits_heatmap.png    allocated bits per layer, layer type x block (depth)
  coef_vs_bits.png    sensitivity coefficient c_l (log scale) against allocated bits
  rel_error.png       reconstruction error ||What - W||_F / ||W||_F per layer
  effective_bits.png  stored bits per weight per layer, split into codes,
                      rescales, trick terms and signs, plus the size-weighted total
  summary.md          the container's facts and one table row per layer
  numbers.json        exactly the plotted numbers, in raana-inspect --json's layout

Usage: /usr/bin/python3 analysis/layers.py CONTAINER.h5 --out DIR [--plugin-dir DIR]
Exit codes: 0 ok, 2 usage, 4 unreadable or invalid container, 5 cannot write DIR."""
import argparse
import os

import raana_analysis as ra  # first: it checks that the packages below are there
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation  # noqa: E402

PART_COLORS = {"codes": "#4c72b0", "rescales": "#dd8452", "tricks": "#55a868", "signs": "#c44e52",
               "factors": "#8172b3"}
PART_LABELS = {"codes": "codes", "rescales": "rescales ({} bits per column)",
               "tricks": "trick terms (mu, row_scale, held-out columns)",
               "signs": "rotation signs", "factors": "low-rank factors"}
REL_ERROR_LABEL = r"relative error $\Vert\hat W - W\Vert_F \,/\, \Vert W\Vert_F$ (ratio; 0 = exact)"


def kinds_in_order(layers):
    """The standard q..down order first, then any other kinds as they come."""
    seen = [la["kind"] for la in layers]
    return [k for k in ra.KIND_ORDER if k in seen] + \
        [k for k in dict.fromkeys(seen) if k not in ra.KIND_ORDER]


def unquantized_note(la):
    """Why a layer has no codes: AllocateBits kept its 16-bit weight (bits
    16), or an exclude pattern or the router rule left it alone (bits 0)."""
    if la["quantized"]:
        return ""
    return " (kept as stored)" if la["bits"] == 16 else " (excluded)"


def bit_palette(layers):
    """One colour per allocated width, from the same colormap everywhere."""
    widths = sorted({la["bits"] for la in layers if la["quantized"]})
    colors = plt.get_cmap("viridis")(np.linspace(0.05, 0.95, max(len(widths), 1)))
    return widths, {w: colors[i] for i, w in enumerate(widths)}


def layer_tick_labels(layers):
    return [f"{la['block']}.{ra.short_kind(la['kind'])}" if la["block"] is not None
            else la["name"] for la in layers]


def per_layer_axis(ax, layers):
    """x axis of a per-layer plot: one tick per layer when they fit, block
    separators always."""
    n = len(layers)
    if n <= 80:
        ax.set_xticks(range(n))
        ax.set_xticklabels(layer_tick_labels(layers), rotation=90, fontsize=8)
        ax.set_xlabel("layer (block.type), in plan order")
    else:
        starts = {}
        for i, la in enumerate(layers):
            starts.setdefault(la["block"], i)
        step = max(1, len(starts) // 16)
        blocks = sorted(b for b in starts if b is not None)[::step]
        ax.set_xticks([starts[b] for b in blocks])
        ax.set_xticklabels([str(b) for b in blocks], fontsize=8)
        ax.set_xlabel("block (each block's layers in plan order: q, k, v, o, gate, up, down)")
    for i in range(1, n):
        if layers[i]["block"] != layers[i - 1]["block"]:
            ax.axvline(i - 0.5, color="0.75", linewidth=0.6, zorder=0)
    ax.set_xlim(-0.7, n - 0.3)
    for i, la in enumerate(layers):
        if not la["quantized"]:  # a bar of height 0: say why it is missing
            ax.text(i, 0, " unquantized", rotation=90, ha="center", va="bottom", fontsize=7,
                    color="0.35", transform=ax.get_xaxis_transform())


def per_layer_width(n):
    """Figure width (inches) of a per-layer bar plot."""
    return min(max(8, 0.28 * n + 2.5), 22)


def bar_edges(n):
    """Thin black bar edges while bars are wide enough to show them."""
    return {"edgecolor": "black", "linewidth": 0.3} if n <= 80 else {"linewidth": 0}


def plot_heatmap(c, name):
    layers = [la for la in c["layers"] if la["block"] is not None]
    kinds = kinds_in_order(layers)
    blocks = sorted({la["block"] for la in layers})
    widths, palette = bit_palette(layers)
    index = np.full((len(kinds), len(blocks)), np.nan)
    excluded = []
    for la in layers:
        r, col = kinds.index(la["kind"]), blocks.index(la["block"])
        if la["quantized"]:
            index[r, col] = widths.index(la["bits"])
        else:
            excluded.append((r, col))
    fig_w = min(max(6.5, 2.8 + 0.62 * len(blocks)), 24)
    fig, ax = plt.subplots(figsize=(fig_w, 1.6 + 0.45 * len(kinds)), layout="constrained")
    cmap = ListedColormap([palette[w] for w in widths] or ["white"])
    cmap.set_bad("0.85")
    norm = BoundaryNorm(np.arange(len(widths) + 1) - 0.5, max(len(widths), 1))
    im = ax.imshow(np.ma.masked_invalid(index), cmap=cmap, norm=norm, aspect="auto")
    annotate = len(blocks) <= 48
    for la in layers:
        r, col = kinds.index(la["kind"]), blocks.index(la["block"])
        if not la["quantized"]:
            if annotate:
                ax.text(col, r, "excl.", ha="center", va="center", fontsize=8, color="0.3")
            continue
        if annotate:
            rgb = palette[la["bits"]][:3]
            light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.5
            ax.text(col, r, f"{la['bits']:g}", ha="center", va="center", fontsize=9,
                    color="black" if light else "white")
    ax.set_yticks(range(len(kinds)))
    ax.set_yticklabels([ra.short_kind(k) for k in kinds])
    step = max(1, len(blocks) // 24)
    ax.set_xticks(range(0, len(blocks), step))
    ax.set_xticklabels([str(b) for b in blocks[::step]])
    ax.set_xlabel("block (depth)")
    ax.set_ylabel("layer type")
    rep = c["report"]
    ax.set_title(f"Allocated bits per weight — {name}\n"
                 f"target {rep['target_avg_bits']:g}, achieved {rep['achieved_avg_bits']:.4g} "
                 f"bits (size-weighted); grey: kept unquantized", fontsize=10)
    if widths:
        cb = fig.colorbar(im, ax=ax, ticks=range(len(widths)), pad=0.02)
        cb.ax.set_yticklabels([f"{w:g}" for w in widths])
        cb.set_label("allocated code width (bits per weight)")
    return fig


def plot_coef_vs_bits(c, name):
    layers = [la for la in c["layers"] if la["quantized"] and la["coef"] > 0]
    kinds = kinds_in_order(layers)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    markers = "osD^vP*Xh<>"
    colors = plt.get_cmap("tab10").colors
    widths = sorted({la["bits"] for la in layers})
    gap = min((b - a for a, b in zip(widths, widths[1:])), default=1.0)
    spread = 0.5 * gap
    for i, kind in enumerate(kinds):
        pts = [la for la in layers if la["kind"] == kind]
        # side by side within each width, so that the types do not hide each other
        dx = (i - (len(kinds) - 1) / 2) * spread / max(len(kinds), 1)
        style = ra.KIND_ORDER.index(kind) if kind in ra.KIND_ORDER else len(ra.KIND_ORDER) + i
        ax.scatter([la["bits"] + dx for la in pts], [la["coef"] for la in pts],
                   marker=markers[style % len(markers)], color=colors[style % len(colors)],
                   s=36, label=ra.short_kind(kind), edgecolors="black", linewidths=0.4,
                   zorder=3)
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False,
                                                         minor_thresholds=(2, 1.2)))
    ax.set_xticks(widths)
    ax.set_xticklabels([f"{w:g}" for w in widths])
    ax.set_xlabel("allocated bits per weight (code width; points of one width spread by type)")
    ax.set_ylabel(r"sensitivity $c_l$ = grad_rms · x_rms · $\Vert W\Vert_F / \sqrt{d_{in}}$"
                  " (log scale)")
    ax.grid(True, which="major", color="0.9", zorder=0)
    ax.set_title(f"Sensitivity coefficient against allocated bits — {name}\n"
                 f"one point per quantized layer ({len(layers)})",
                 fontsize=10)
    ax.legend(title="layer type", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def plot_rel_error(c, name):
    layers = c["layers"]
    widths, palette = bit_palette(layers)
    fig, ax = plt.subplots(figsize=(per_layer_width(len(layers)), 5.2), layout="constrained")
    colors = [palette[la["bits"]] if la["quantized"] else "0.8" for la in layers]
    ax.bar(range(len(layers)), [la["rel_error"] for la in layers], color=colors, zorder=3,
           **bar_edges(len(layers)))
    per_layer_axis(ax, layers)
    ax.set_ylabel(REL_ERROR_LABEL)
    ax.grid(True, axis="y", color="0.9", zorder=0)
    handles = [Patch(color=palette[w], label=f"{w:g} bits") for w in widths]
    if any(not la["quantized"] for la in layers):
        handles.append(Patch(color="0.8", label="kept unquantized"))
    ax.legend(handles=handles, title="allocated width", loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(f"Reconstruction error per layer — {name}\n"
                 "against the checkpoint's weight; bar colour = allocated bits", fontsize=10)
    return fig


def rescale_widths(layers):
    """The rescales' stored bits per column (32, or 16 in a version-3
    container), from the breakdown: rescales = width * d_out / (d_in * d_out)."""
    widths = sorted({round(la["bits_breakdown"]["rescales"] * la["d_in"])
                     for la in layers if la["quantized"]})
    return " or ".join(str(w) for w in widths) or "32"


def plot_effective_bits(c, name, total):
    layers = c["layers"]
    n = len(layers)
    labels = dict(PART_LABELS, rescales=PART_LABELS["rescales"].format(rescale_widths(layers)))
    main_w = per_layer_width(n)
    # the per-layer bars, and the total on a narrow axis of its own beside them
    fig, (ax, ax_total) = plt.subplots(
        1, 2, sharey=True, figsize=(main_w + 1.3, 5.6), layout="constrained",
        gridspec_kw={"width_ratios": [main_w, 0.9]})
    bottom = np.zeros(n)
    bottom_total = 0.0
    for part in ra.breakdown_parts(layers):
        vals = np.array([la["bits_breakdown"].get(part, 0.0) if la["quantized"] else 0.0
                         for la in layers])
        ax.bar(range(n), vals, bottom=bottom, color=PART_COLORS[part], label=labels[part],
               zorder=3, **bar_edges(n))
        bottom += vals
        if total:
            ax_total.bar([0], [total[part]], bottom=bottom_total, color=PART_COLORS[part],
                         width=0.6, edgecolor="black", linewidth=0.3, zorder=3)
            bottom_total += total[part]
    per_layer_axis(ax, layers)
    ax.set_ylabel("stored bits per weight")
    ax.grid(True, axis="y", color="0.9", zorder=0)
    ax_total.set_xlim(-0.6, 0.6)
    ax_total.set_xticks([0])
    ax_total.set_xticklabels(["all quantized\nlayers, size-\nweighted"], fontsize=8)
    ax_total.grid(True, axis="y", color="0.9", zorder=0)
    ax_total.tick_params(axis="y", labelleft=False)
    if total:
        ax_total.text(0, bottom_total, f"{bottom_total:.3f}", ha="center", va="bottom",
                      fontsize=9, fontweight="bold")
    ax.set_ylim(0, max(float(bottom.max()), bottom_total) * 1.08)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, fontsize=9)
    fig.suptitle(f"Effective bits per weight, everything stored — {name}\n"
                 "(docs/FORMAT.md \"Bits, honestly counted\"; HDF5 overhead and compression "
                 "not counted)", fontsize=10)
    return fig


def summary_markdown(c, name, total, pngs):
    rep, alloc, cal = c["report"], c["allocation"], c.get("calibration", {})
    q = [la for la in c["layers"] if la["quantized"]]
    parts = ra.breakdown_parts(c["layers"])
    lines = [
        f"# Layers of {name}",
        "",
        f"- container: `{c['path']}` (format version {c['format_version']}, "
        f"model type {c['model_type']}, checkpoint fingerprint "
        f"{c['checkpoint_fingerprint'] or '—'})",
        f"- allocation: target {rep['target_avg_bits']:g} bits, achieved "
        f"{rep['achieved_avg_bits']:.4f} (codes only, size-weighted), method {alloc['method']}, "
        f"candidates {', '.join(f'{w:g}' for w in alloc['candidates'])}, modelled error "
        f"{alloc['modelled_error']:.6g}",
        f"- effective bits per weight: {rep['effective_bits_quantized']:.4f} over the quantized "
        f"layers, {rep['effective_bits_model']:.4f} over the whole model",
    ]
    if total:
        lines.append("- the quantized layers' bits per weight, by what is stored: " +
                     ", ".join(f"{p} {total[p]:.4f}" for p in parts))
    if "loss" in cal:
        extra = (f", {cal['windows']} windows of {cal['seq_len']} tokens"
                 if "windows" in cal else "")
        lines.append(f"- calibration: source {cal['source']}{extra}, loss {cal['loss']:.6f}")
    lines.append(f"- {len(q)} of {len(c['layers'])} layers quantized")
    lines += ["", "| layer | block | type | d_out × d_in | bits | coef c_l | rel. error | "
              "eff. bits | " + " | ".join(parts) + " |",
              "|---|---:|---|---:|---:|---:|---:|---:|" + "---:|" * len(parts)]
    for la in c["layers"]:
        b = la["bits_breakdown"] or {}
        lines.append(
            f"| {la['name']} | {ra.fmt(la['block'], 'd')} | {ra.short_kind(la['kind'])} | "
            f"{la['d_out']} × {la['d_in']} | "
            f"{la['bits']:g}{unquantized_note(la)} | {la['coef']:.4e} | "
            f"{la['rel_error']:.6f} | {la['effective_bits']:.4f} | "
            + " | ".join(ra.fmt(b.get(p), ".4f") for p in parts) + " |")
    if total:
        lines.append(f"| **all quantized (size-weighted)** | | | | {rep['achieved_avg_bits']:.4f} "
                     f"| | | **{sum(total.values()):.4f}** | " +
                     " | ".join(f"{total[p]:.4f}" for p in parts) + " |")
    lines += ["", "## Plots", ""]
    lines += [f"![{title}]({png})" for png, title in pngs]
    return "\n".join(lines) + "\n"


NUMBER_KEYS = ["name", "block", "kind", "d_in", "d_out", "quantized", "bits", "coef",
               "rel_error", "effective_bits", "bits_breakdown"]


def numbers(c, total):
    """The plotted numbers; same keys and meaning as raana-inspect --json."""
    out = {k: c[k] for k in ("path", "format", "format_version", "model_type",
                             "checkpoint_fingerprint", "report", "allocation")}
    out["layers"] = [{k: la[k] for k in NUMBER_KEYS} for la in c["layers"]]
    out["total_bits_breakdown"] = total
    return out


def main():
    ap = argparse.ArgumentParser(
        prog="layers.py", description="Per-layer plots and tables of one raana container.")
    ap.add_argument("container", help="a raana container (.h5)")
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--plugin-dir", help="directory holding raana's zstd HDF5 plugin "
                    "(default: HDF5_PLUGIN_PATH, else this checkout's build*/hdf5-plugin, "
                    "else next to raana-mpi on PATH)")
    args = ap.parse_args()
    ra.setup_plugin(args.plugin_dir)
    c = ra.read_container(args.container)
    if not c["layers"]:
        raise ra.AnalysisError(f"{args.container}: /allocation lists no layers")
    total = ra.total_breakdown(c["layers"])
    name = os.path.basename(args.container)
    figures = [
        ("bits_heatmap.png", "allocated bits per layer", plot_heatmap(c, name)),
        ("coef_vs_bits.png", "sensitivity coefficient against allocated bits",
         plot_coef_vs_bits(c, name)),
        ("rel_error.png", "reconstruction error per layer", plot_rel_error(c, name)),
        ("effective_bits.png", "effective bits per weight by what is stored",
         plot_effective_bits(c, name, total)),
    ]
    ra.prepare_out_dir(args.out)
    for png, _, fig in figures:
        ra.save_figure(fig, args.out, png)
    ra.write_text(args.out, "summary.md",
                  summary_markdown(c, name, total, [(p, t) for p, t, _ in figures]))
    ra.write_json(args.out, "numbers.json", numbers(c, total))
    print(f"layers.py: wrote {len(figures)} plots, summary.md and numbers.json to {args.out}")


if __name__ == "__main__":
    ra.run_main("layers.py", main)

#!/usr/bin/python3
"""sweep.py — a bit-budget sweep: what each container costs in stored bits
and what it loses in quality.

For every container X.h5 it reads /report (effective_bits_quantized) and
/allocation (candidates: one width means a uniform-bits run) from X.h5, and
the evaluation from X.eval.json next to it (the output of
`raana-eval --model M --container X.h5 --text T --json`). Optional extra
points, e.g. another tool's results, come from a CSV with the columns
label, effective_bits, ppl_ratio, kl_mean (kl_mean may be empty).

Writes into --out DIR:
  sweep_ppl_ratio.png  perplexity ratio (quantized / original) against effective bits
  sweep_kl.png         mean KL divergence per token against effective bits
  summary.md           one table row per point
  numbers.json         the plotted points

Usage: /usr/bin/python3 analysis/sweep.py C1.h5 C2.h5 ... --out DIR
                        [--extra-csv FILE] [--extra-name NAME] [--plugin-dir DIR]
Exit codes: 0 ok, 2 usage, 4 unreadable or invalid input, 5 cannot write DIR."""
import argparse
import csv
import json
import math
import os

import raana_analysis as ra  # first: it checks that the packages below are there
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

SERIES_ALLOCATE = "AllocateBits"
SERIES_UNIFORM = "uniform bits"
STYLE = {SERIES_ALLOCATE: ("#1f77b4", "o", "-"), SERIES_UNIFORM: ("#d62728", "s", "--")}
EXTRA_STYLE = ("#2ca02c", "D", ":")
LABEL_FONTSIZE = 8
# where a point's label may go (offset in points, alignment), in order of preference
LABEL_SPOTS = [((7, 0), "left", "center"), ((0, 8), "center", "bottom"),
               ((0, -8), "center", "top"), ((-7, 0), "right", "center"),
               ((7, 7), "left", "bottom"), ((-7, 7), "right", "bottom"),
               ((7, -7), "left", "top"), ((-7, -7), "right", "top")]
X_LABEL = "effective bits per weight (quantized layers, everything stored)"


def eval_json_path(container):
    stem = container[:-3] if container.endswith(".h5") else container
    return stem + ".eval.json"


def _finite(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ra.AnalysisError(f"{where}: {what} is not a finite number ({value!r})")
    return float(value)


def read_eval(path, container):
    """ppl_ratio (required), KL and the perplexities (optional) of X.eval.json."""
    if not os.path.isfile(path):
        raise ra.AnalysisError(
            f"{container}: no evaluation next to it: expected {path} (the output of "
            f"raana-eval --model MODEL --container {container} --text TEXT --json)")
    try:
        with open(path, encoding="utf-8") as fh:
            ev = json.load(fh)
    except (OSError, ValueError) as e:
        raise ra.AnalysisError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(ev, dict) or "ppl_ratio" not in ev:
        raise ra.AnalysisError(f"{path}: no ppl_ratio (raana-eval needs both --model and "
                               "--container for it)")

    def optional(*keys):
        v = ev
        for k in keys:
            if not isinstance(v, dict) or k not in v or v[k] is None:
                return None
            v = v[k]
        return _finite(v, ".".join(keys), path)

    return {
        "ppl_ratio": _finite(ev["ppl_ratio"], "ppl_ratio", path),
        "kl_mean": optional("kl", "mean"), "kl_p99": optional("kl", "p99"),
        "ppl_original": optional("original", "perplexity"),
        "ppl_quantized": optional("quantized", "perplexity"),
        "top1_agreement": optional("top1_agreement"),
    }


def container_point(path):
    with ra._open(path) as f:
        s = ra.read_summary(f, path)
    ev = read_eval(eval_json_path(path), path)
    label = os.path.basename(path)
    label = label[:-3] if label.endswith(".h5") else label
    return {
        "label": label,
        "series": SERIES_UNIFORM if len(s["allocation"]["candidates"]) == 1 else SERIES_ALLOCATE,
        "source": path,
        "effective_bits": s["report"]["effective_bits_quantized"],
        "ppl_ratio": ev["ppl_ratio"], "kl_mean": ev["kl_mean"],
        "target_avg_bits": s["report"]["target_avg_bits"],
        "achieved_avg_bits": s["report"]["achieved_avg_bits"],
        "effective_bits_model": s["report"]["effective_bits_model"],
        "candidates": s["allocation"]["candidates"],
        "kl_p99": ev["kl_p99"], "ppl_original": ev["ppl_original"],
        "ppl_quantized": ev["ppl_quantized"], "top1_agreement": ev["top1_agreement"],
    }


def csv_points(path, series):
    """label, effective_bits, ppl_ratio[, kl_mean] rows of --extra-csv."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ra.AnalysisError(f"--extra-csv {path}: {e}") from None
    if not rows:
        raise ra.AnalysisError(f"--extra-csv {path}: no rows")
    missing = [c for c in ("label", "effective_bits", "ppl_ratio") if c not in header]
    if missing:
        raise ra.AnalysisError(f"--extra-csv {path}: no column {', '.join(missing)} "
                               "(needs label, effective_bits, ppl_ratio, kl_mean)")
    points = []
    for line, row in enumerate(rows, start=2):
        where = f"--extra-csv {path} line {line}"

        def number(col, optional=False):
            text = (row.get(col) or "").strip()
            if optional and text == "":
                return None
            try:
                v = float(text)
            except ValueError:
                raise ra.AnalysisError(f"{where}: {col} '{text}' is not a number") from None
            if not math.isfinite(v) or v < 0 or (v == 0 and col != "kl_mean"):
                raise ra.AnalysisError(f"{where}: {col} {text} is out of range")
            return v

        points.append({"label": (row.get("label") or "").strip(), "series": series,
                       "source": path, "effective_bits": number("effective_bits"),
                       "ppl_ratio": number("ppl_ratio"),
                       "kl_mean": number("kl_mean", optional=True)})
    return points


def series_order(points):
    names = [p["series"] for p in points]
    fixed = [s for s in (SERIES_ALLOCATE, SERIES_UNIFORM) if s in names]
    return fixed + [s for s in dict.fromkeys(names) if s not in fixed]


def _label_box(anchor, text, spot, px_per_pt):
    (dx, dy), ha, va = spot
    w = len(text) * LABEL_FONTSIZE * 0.62 * px_per_pt
    h = LABEL_FONTSIZE * 1.25 * px_per_pt
    x = anchor[0] + dx * px_per_pt - {"left": 0, "center": w / 2, "right": w}[ha]
    y = anchor[1] + dy * px_per_pt - {"bottom": 0, "center": h / 2, "top": h}[va]
    return (x, y, x + w, y + h)


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _line_samples(ax, lines):
    """Points along the drawn series lines, in pixels (to keep labels off them)."""
    out = []
    for xs, ys in lines:
        pix = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]
        for a, b in zip(pix, pix[1:]):
            out += [(a[0] + (b[0] - a[0]) * t / 24, a[1] + (b[1] - a[1]) * t / 24)
                    for t in range(1, 24)]
    return out


def place_labels(fig, ax, items, lines):
    """Labels beside their points, each at the first spot that covers no
    marker, no label already placed and no line (or the least-crowded spot)."""
    fig.canvas.draw()  # settles the layout, so data -> pixels is final enough
    px_per_pt = fig.dpi / 72
    anchors = [ax.transData.transform((x, y)) for x, y, _, _ in items]
    r = 6 * px_per_pt
    markers = [(a[0] - r, a[1] - r, a[0] + r, a[1] + r) for a in anchors]
    samples = _line_samples(ax, lines)
    frame = ax.get_window_extent()
    placed = []
    if ax.get_legend():
        e = ax.get_legend().get_window_extent()
        placed.append((e.x0, e.y0, e.x1, e.y1))
    for (x, y, text, color), anchor in zip(items, anchors):
        def cost(spot):
            box = _label_box(anchor, text, spot, px_per_pt)
            outside = not (frame.x0 <= box[0] and box[2] <= frame.x1 and
                           frame.y0 <= box[1] and box[3] <= frame.y1)
            crossed = sum(box[0] <= px <= box[2] and box[1] <= py <= box[3] for px, py in samples)
            return (sum(_overlap(box, m) for m in markers) + sum(_overlap(box, b) for b in placed)
                    + 3 * outside + 0.25 * min(crossed, 4))
        spot = min(LABEL_SPOTS, key=cost)  # min keeps the first of equal costs
        placed.append(_label_box(anchor, text, spot, px_per_pt))
        ax.annotate(text, (x, y), xytext=spot[0], textcoords="offset points", ha=spot[1],
                    va=spot[2], fontsize=LABEL_FONTSIZE, color=color)


def plot_metric(points, key, ylabel, title, log_always):
    fig, ax = plt.subplots(figsize=(8.5, 5.5), layout="constrained")
    shown = [p for p in points if p[key] is not None]
    labels, lines = [], []
    for series in series_order(points):
        pts = sorted((p for p in shown if p["series"] == series), key=lambda p: p["effective_bits"])
        if not pts:
            continue
        color, marker, line = STYLE.get(series, EXTRA_STYLE)
        ax.plot([p["effective_bits"] for p in pts], [p[key] for p in pts], color=color,
                marker=marker, linestyle=line, markersize=7, markeredgecolor="black",
                markeredgewidth=0.5, label=f"{series} ({len(pts)})", zorder=3)
        labels += [(p["effective_bits"], p[key], p["label"], color) for p in pts]
        lines.append(([p["effective_bits"] for p in pts], [p[key] for p in pts]))
    # the same x range in every plot of the sweep, drawn or not
    xs = [p["effective_bits"] for p in points]
    pad = 0.08 * max(max(xs) - min(xs), 0.5)
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    values = [p[key] for p in shown]
    if values and min(values) > 0 and (log_always or max(values) / min(values) > 4):
        ax.set_yscale("log")
        # plain numbers at 1, 2, 5 x 10^k: a ratio of 2 reads better than 2 x 10^0
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ylabel += " (log scale)"
    if key == "ppl_ratio":
        ax.axhline(1.0, color="0.25", linewidth=1.0, linestyle=(0, (6, 3)), zorder=2,
                   label="unquantized (ratio 1)")
        lines.append((list(ax.get_xlim()), [1.0, 1.0]))
    if not values:
        ax.text(0.5, 0.5, f"no {key} in the inputs\n(raana-eval --json with --model and "
                "--container gives it)", ha="center", va="center", transform=ax.transAxes,
                fontsize=11, color="0.3")
        ax.set_yticks([])
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", color="0.9", zorder=0)
    ax.margins(y=0.12)
    missing = [p["label"] for p in points if p[key] is None]
    if missing:
        names = ", ".join(missing[:6])
        if len(missing) > 6:
            names += f" and {len(missing) - 6} more"
        title += f"\nnot drawn (no {key} given): {names}"
    ax.set_title(title, fontsize=10)
    if values:
        ax.legend(loc="upper right", frameon=True, framealpha=0.9, fontsize=9)
    if len(labels) <= 24:
        place_labels(fig, ax, labels, lines)
    return fig


def summary_markdown(points, pngs):
    lines = ["# Bit-budget sweep", "",
             "Effective bits count every stored bit of the quantized layers "
             "(docs/FORMAT.md \"Bits, honestly counted\"); ppl ratio = quantized / original "
             "perplexity; KL = mean KL(P_original ‖ P_quantized) per token, in nats.", "",
             "| series | label | target bits | achieved bits (codes) | eff. bits (quantized) | "
             "eff. bits (model) | ppl original | ppl quantized | ppl ratio | KL mean | KL p99 | "
             "top-1 agreement |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for series in series_order(points):
        for p in sorted((p for p in points if p["series"] == series),
                        key=lambda p: p["effective_bits"]):
            g = p.get
            lines.append(
                f"| {series} | {p['label']} | {ra.fmt(g('target_avg_bits'), 'g')} | "
                f"{ra.fmt(g('achieved_avg_bits'), '.4f')} | {p['effective_bits']:.4f} | "
                f"{ra.fmt(g('effective_bits_model'), '.4f')} | "
                f"{ra.fmt(g('ppl_original'), '.4f')} | "
                f"{ra.fmt(g('ppl_quantized'), '.4f')} | {p['ppl_ratio']:.6f} | "
                f"{ra.fmt(p['kl_mean'], '.6f')} | {ra.fmt(g('kl_p99'), '.6f')} | "
                f"{ra.fmt(g('top1_agreement'), '.6f')} |")
    lines += ["", "## Plots", ""] + [f"![{title}]({png})" for png, title in pngs]
    return "\n".join(lines) + "\n"


POINT_KEYS = ["label", "series", "source", "effective_bits", "ppl_ratio", "kl_mean",
              "target_avg_bits", "candidates"]


def main():
    ap = argparse.ArgumentParser(
        prog="sweep.py", description="Quality against stored bits over several raana containers.")
    ap.add_argument("containers", nargs="+", help="raana containers X.h5, each with X.eval.json")
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--extra-csv", help="extra points: CSV with label, effective_bits, "
                    "ppl_ratio, kl_mean")
    ap.add_argument("--extra-name", help="legend name of the CSV's series (default: its file name)")
    ap.add_argument("--plugin-dir", help="directory holding raana's zstd HDF5 plugin "
                    "(only attributes are read, so it is rarely needed)")
    args = ap.parse_args()
    ra.setup_plugin(args.plugin_dir)
    points = [container_point(c) for c in args.containers]
    if args.extra_csv:
        name = args.extra_name or os.path.splitext(os.path.basename(args.extra_csv))[0]
        if name in (SERIES_ALLOCATE, SERIES_UNIFORM):
            raise ra.AnalysisError(f"--extra-name {name}: that is a container series",
                                   ra.EXIT_USAGE)
        points += csv_points(args.extra_csv, name)
    figures = [
        ("sweep_ppl_ratio.png", "perplexity ratio against effective bits",
         plot_metric(points, "ppl_ratio", "perplexity ratio, quantized / original",
                     "Perplexity ratio against stored bits per weight", False)),
        ("sweep_kl.png", "mean KL divergence against effective bits",
         plot_metric(points, "kl_mean", r"mean KL($P_{orig}$ ‖ $P_{quant}$) per token (nats)",
                     "KL divergence from the original model against stored bits per weight",
                     True)),
    ]
    ra.prepare_out_dir(args.out)
    for png, _, fig in figures:
        ra.save_figure(fig, args.out, png)
    ra.write_text(args.out, "summary.md", summary_markdown(points, [(p, t) for p, t, _ in figures]))
    ra.write_json(args.out, "numbers.json",
                  {"points": [{k: p.get(k) for k in POINT_KEYS} for p in points]})
    print(f"sweep.py: wrote {len(figures)} plots, summary.md and numbers.json "
          f"({len(points)} points) to {args.out}")


if __name__ == "__main__":
    ra.run_main("sweep.py", main)

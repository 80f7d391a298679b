#!/usr/bin/env python3
"""Draws `densenet bench --json` results as SVG line charts (no plotting library needed).

    plot_memory.py --x depth --out docs/memory-vs-depth.svg depth.jsonl
    plot_memory.py --x batch --out docs/memory-vs-batch.svg batch.jsonl

--x depth plots peak memory against the network depth (3 * 2 * layers per block + 4, DenseNet-BC
with three blocks); --x batch against the batch size. One line per memory mode.
"""
import argparse
import json

COLOURS = {"naive": "#d62728", "efficient": "#1f77b4", "minimal": "#2ca02c"}


def load(paths, x_kind):
    series = {}
    for path in paths:
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if "memory" not in row:
                continue
            x = row["batch"] if x_kind == "batch" else row["depth"]
            series.setdefault(row["memory"], []).append((x, row["rss_delta_bytes"] / 2 ** 20))
    return {mode: sorted(points) for mode, points in series.items()}


def svg(series, x_label, title):
    width, height, left, bottom, top, right = 640, 400, 70, 50, 40, 130
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x0, x1, y1 = min(xs), max(xs), max(ys) * 1.05
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - y / y1 * (height - top - bottom)  # noqa: E731
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14">%s</text>' % (left, title),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, height - bottom, width - right, height - bottom),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, top, left, height - bottom),
           '<text x="%d" y="%d" text-anchor="middle">%s</text>' % ((left + width - right) / 2, height - 12, x_label),
           '<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">peak RSS increase (MiB)</text>' % ((top + height - bottom) / 2, (top + height - bottom) / 2)]
    for i in range(6):
        y = y1 * i / 5
        out.append('<text x="%d" y="%d" text-anchor="end">%.0f</text>' % (left - 6, sy(y) + 4, y))
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, sy(y), width - right, sy(y)))
    for x in sorted(set(xs)):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (sx(x), height - bottom + 16, x))
    for row, (mode, points) in enumerate(sorted(series.items())):
        colour = COLOURS.get(mode, "black")
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colour, " ".join("%.1f,%.1f" % (sx(x), sy(y)) for x, y in points)))
        for x, y in points:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (sx(x), sy(y), colour))
        out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (width - right + 10, top + 20 + 18 * row, colour, mode))
    out.append("</svg>")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", choices=["depth", "batch"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    series = load(args.files, args.x)
    label = "depth L (DenseNet-BC, k=12, batch 64)" if args.x == "depth" else "batch size"
    with open(args.out, "w") as f:
        f.write(svg(series, label, args.title or "densenet training step: peak memory"))


if __name__ == "__main__":
    main()

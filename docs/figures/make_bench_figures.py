"""Draw the benchmark figures of docs/benchmarks.md from the recorded runs in bench/results.

    python docs/figures/make_bench_figures.py        # or: make figures

Reads ``bench/results/gpu-*.json`` (written by ``bench/gpu.py --out``) and
``bench/results/model-*.json`` (``bench/model.py``) and writes deterministic SVGs (text kept as
text, fixed ids, no date) to ``docs/figures/``; each figure states the machine and the versions
recorded with its run. ``bench/conv.py`` prints its medians but writes no JSON, so the
convolution figure is drawn from the table of docs/benchmarks.md that quotes that run, and says
so. The newest result of each kind (by the date in its file name) is used.
"""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "figures"
PAGE = ROOT / "docs" / "benchmarks.md"

TIMES = "\N{MULTIPLICATION SIGN}"
PYTORCH, DILNET, DILNET_ALT, GREY = "#7f7f7f", "#1f77b4", "#9ecae1", "#c7c7c7"

plt.rcParams.update(
    {
        "svg.hashsalt": "dilnet",  # fixed element ids: the same data gives the same file
        "svg.fonttype": "none",  # text stays text (smaller, searchable, no glyph paths)
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
    }
)


def newest(pattern):
    """(path, date) of the newest file matching `pattern` in bench/results, by the date in its
    name (``...-YYYY-MM-DD.json``)."""
    found = []
    for path in RESULTS.glob(pattern):
        match = re.search(r"(\d{4}-\d{2}-\d{2})\.json$", path.name)
        if match:
            found.append((match.group(1), path))
    if not found:
        raise SystemExit(f"no {pattern} in {RESULTS}: run the benchmark first")
    date, path = max(found)
    return path, date


def cudnn_version(code):
    """cuDNN's integer version (91900) as text (9.19.0)."""
    code = int(code)
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def save(fig, name, caption):
    """Write `fig` with `caption` (machine, versions, source) under the axes."""
    fig.text(0.01, 0.01, caption, fontsize=7, color="#444444", va="bottom", ha="left", wrap=True)
    path = OUT / name
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


def label_bars(ax, bars, fmt):
    for bar in bars:
        width = bar.get_width()
        ax.text(
            width,
            bar.get_y() + bar.get_height() / 2,
            " " + fmt(width),
            va="center",
            ha="left",
            fontsize=8,
        )


def gpu_figures():
    path, date = newest("gpu-*.json")
    run = json.loads(path.read_text())
    env, cfg = run["environment"], run["config"]
    machine = (
        f"{env['torch_device']} (JAX: {env['jax_device']}); torch {env['torch']} "
        f"(CUDA {env['torch_cuda']}, cuDNN {cudnn_version(env['cudnn'])}), jax {env['jax']}, "
        f"pytensor {env['pytensor']}, dilnet {env['dilnet']}, Python {env['python']}; "
        f"float32, TF32 as each framework's default; {date}"
    )
    source = f"bench/gpu.py, bench/results/{path.name}"
    size = cfg["size"]
    shape = f"x ({cfg['batch']}, {cfg['channels']}, {size}³)"

    # the context module: forward and training step
    torch_run, forward = run["torch_context"], run["dilnet_forward"]
    steps = run["dilnet_step"]
    rows = [
        ("forward", "PyTorch / cuDNN", torch_run["forward_ms"], PYTORCH),
        ("forward", "dilnet, JAX mode", forward["forward_ms"], DILNET),
        ("training step", "PyTorch / cuDNN", torch_run["step_ms"], PYTORCH),
    ]
    for strategy, colour in (("space_to_batch", DILNET), ("taps", DILNET_ALT), ("vjp", GREY)):
        if strategy in steps:
            rows.append(
                ("training step", f"dilnet, weight grad '{strategy}'", steps[strategy]["step_ms"],
                 colour)
            )  # fmt: skip
    fig, axes = plt.subplots(
        2, 1, figsize=(7.2, 4.2), gridspec_kw={"height_ratios": [2, 4]}, layout="constrained"
    )
    fig.get_layout_engine().set(rect=(0, 0.09, 1, 0.91))
    for ax, kind in zip(axes, ("forward", "training step"), strict=True):
        part = [r for r in rows if r[0] == kind]
        reference = part[0][2]
        bars = ax.barh(
            [r[1] for r in part][::-1], [r[2] for r in part][::-1], color=[r[3] for r in part][::-1]
        )
        label_bars(
            ax, bars, lambda ms, ref=reference: f"{ms:.1f} ms ({ms / ref:.2f}{TIMES} PyTorch)"
        )
        ax.set_title(f"{kind}", loc="left", fontsize=9)
        ax.set_xlim(0, max(r[2] for r in part) * 1.45)
        ax.set_xlabel("ms (median)" if kind == "training step" else None)
    fig.suptitle(
        f"3D context module on the GPU: dilnet (PyTensor JAX mode) vs PyTorch/cuDNN\n{shape}, "
        "dilations 1,1,2,4,8,16,1 + 1³, C = 32; medians",
        fontsize=10,
        fontweight="bold",
        x=0.01,
        ha="left",
    )
    save(fig, "bench-gpu-context.svg", f"{machine}.\nSource: {source}.")

    # one layer: forward vs Lasagne's backward-wrt-weights trick
    layers = run["single_layer"]
    dilations = sorted(layers, key=lambda k: int(k.split("=")[1]))
    series = [
        ("PyTorch forward", "torch_forward_ms", PYTORCH),
        ("PyTorch, weight-gradient trick", "torch_trick_ms", GREY),
        ("dilnet forward", "dilnet_forward_ms", DILNET),
        ("dilnet, weight-gradient trick", "dilnet_trick_ms", DILNET_ALT),
    ]
    fig, ax = plt.subplots(figsize=(7.2, 3.5), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.1, 1, 0.9))
    width = 0.2
    for i, (label, key, colour) in enumerate(series):
        xs = [j + (i - 1.5) * width for j in range(len(dilations))]
        values = [layers[d][key] for d in dilations]
        bars = ax.bar(xs, values, width, label=label, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(dilations)), [f"dilation {d.split('=')[1]}" for d in dilations])
    ax.set_ylabel("ms (median)")
    ax.legend(frameon=False, fontsize=8, ncols=2, loc="upper left")
    ax.set_ylim(0, max(layers[d][k] for d in dilations for _, k, _ in series) * 1.35)
    ax.set_title(
        "One dilated 3³ layer on the GPU: forward vs Lasagne's weight-gradient trick"
        f"\n{shape}, W ({cfg['channels']}, {cfg['channels']}, 3³), 'same'; medians",
        loc="left",
    )
    save(fig, "bench-gpu-layer.svg", f"{machine}.\nSource: {source}.")


def cpu_model_figures():
    path, _ = newest("model-*.json")  # the record carries its own date
    run = json.loads(path.read_text())
    machine = (
        f"{run['machine']}, Python {run['python']}, pytensor {run['pytensor']}, "
        f"dilnet {run['dilnet']}; float32; {run['date']}"
    )
    source = f"bench/model.py, bench/results/{path.name}"

    # tiled vs whole-volume prediction: time and peak memory
    volume = run["volume"]
    kinds = [("whole", "whole-volume predict", PYTORCH), ("tiled", "predict_volume, tiled", DILNET)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.6), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.12, 1, 0.88))
    names = [label for _, label, _ in kinds][::-1]
    colours = [c for _, _, c in kinds][::-1]
    bars = left.barh(names, [volume[k]["seconds"] for k, _, _ in kinds][::-1], color=colours)
    label_bars(left, bars, lambda s: f"{s:.1f} s")
    left.set_xlim(0, max(volume[k]["seconds"] for k, _, _ in kinds) * 1.3)
    left.set_xlabel("seconds")
    left.set_title("time", loc="left", fontsize=9)
    bars = right.barh(names, [volume[k]["peak_rss_mib"] for k, _, _ in kinds][::-1], color=colours)
    label_bars(right, bars, lambda m: f"{m:.0f} MiB")
    before = volume["tiled"]["rss_before_mib"]
    right.axvline(before, color="black", lw=0.8, ls="--", label=f"before: {before:.0f} MiB")
    right.legend(frameon=False, fontsize=7, loc="lower right")
    right.set_xlim(0, max(volume[k]["peak_rss_mib"] for k, _, _ in kinds) * 1.35)
    right.set_xlabel("peak resident memory, MiB")
    right.set_title("peak memory", loc="left", fontsize=9)
    right.set_yticks([])
    fig.suptitle(
        "Predicting a 256³ volume: tiled under memory_limit='2GiB' vs whole",
        fontsize=10,
        fontweight="bold",
        x=0.01,
        ha="left",
    )
    save(fig, "bench-cpu-tiled.svg", f"{machine}.\nSource: {source}.")

    # compile latency: spec -> first finished training step
    latency = run["latency"]
    modes = list(dict.fromkeys(r["mode"] for r in latency))
    fig, ax = plt.subplots(figsize=(7.2, 2.6), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.12, 1, 0.88))
    width = 0.38
    for i, (cache, colour) in enumerate((("cold", PYTORCH), ("warm", DILNET))):
        values = [
            next(r for r in latency if r["mode"] == m and r["cache"] == cache)[
                "spec_to_first_step_s"
            ]
            for m in modes
        ]
        ys = [j + (i - 0.5) * width for j in range(len(modes))]
        bars = ax.barh(ys, values, width, color=colour, label=f"{cache} compile cache")
        label_bars(ax, bars, lambda s: f"{s:.1f} s")
    labels = {"CVM": "C VM ('CVM', dilnet's default)", "FAST_COMPILE": "Python VM ('FAST_COMPILE')"}
    ax.set_yticks(range(len(modes)), [labels.get(m, m) for m in modes])
    ax.invert_yaxis()
    ax.set_xlabel("seconds from Sequential([...]) to the first finished training step")
    ax.set_xlim(0, max(r["spec_to_first_step_s"] for r in latency) * 1.2)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.suptitle(
        f"Compile latency: a context-module model, 24³ {TIMES} 1, each run in a fresh process",
        fontsize=10,
        fontweight="bold",
        x=0.01,
        ha="left",
    )
    save(fig, "bench-cpu-latency.svg", f"{machine}.\nSource: {source}.")


def conv_table():
    """The rows of the convolution table of docs/benchmarks.md: (dilation, pass, path, ms)."""
    text = PAGE.read_text()
    section = text.split("## The dilated 3D convolution", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], cells[2], float(cells[3])))
    if not rows:
        raise SystemExit(f"{PAGE}: no convolution table under '## The dilated 3D convolution'")
    return rows


def conv_figure():
    rows = conv_table()
    # the run's machine and versions, as the page's first paragraph records them
    intro = PAGE.read_text().split("\n\n", 2)[1].replace("\n", " ")
    if not intro.startswith("All figures: medians on a "):
        raise SystemExit(f"{PAGE}: expected the first paragraph to state the CPU machine")
    machine = intro.removeprefix("All figures: medians on a ").split(". ")[0]
    paths = list(dict.fromkeys(r[2] for r in rows))
    passes = list(dict.fromkeys(r[1] for r in rows))
    dilations = sorted({r[0] for r in rows})
    colours = dict(zip(paths, (PYTORCH, DILNET_ALT, DILNET), strict=False))
    fig, axes = plt.subplots(1, len(passes), figsize=(7.2, 2.9), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.14, 1, 0.86))
    width = 0.8 / len(paths)
    for ax, kind in zip(axes, passes, strict=True):
        for i, path in enumerate(paths):
            values = [
                next(r[3] for r in rows if r[0] == d and r[1] == kind and r[2] == path)
                for d in dilations
            ]
            xs = [j + (i - (len(paths) - 1) / 2) * width for j in range(len(dilations))]
            bars = ax.bar(xs, values, width, label=path, color=colours[path])
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(dilations)), [f"d={d}" for d in dilations])
        ax.set_title(kind, loc="left", fontsize=9)
        ax.set_ylabel("ms (median)")
        ax.set_ylim(0, max(r[3] for r in rows if r[1] == kind) * (1.7 if ax is axes[0] else 1.25))
    axes[0].legend(frameon=False, fontsize=7, loc="upper left")
    fig.suptitle(
        "Dilated 3D convolution on the CPU: x (1, 32, 48³), W (32, 32, 3³), float32, 'same'",
        fontsize=10,
        fontweight="bold",
        x=0.01,
        ha="left",
    )
    save(
        fig,
        "bench-cpu-conv.svg",
        f"{machine}.\nSource: bench/conv.py as quoted in the table of docs/benchmarks.md "
        "(bench/conv.py writes no JSON record).",
    )


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gpu_figures()
    cpu_model_figures()
    conv_figure()


if __name__ == "__main__":
    main()

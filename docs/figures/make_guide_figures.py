"""Draw the guide pages' figures (SVG) from dilnet's own arithmetic.

    python docs/figures/make_guide_figures.py        # or: make figures

Writes, next to this script:

- ``pipeline.svg`` (concepts.md): blocks -> compiler -> layers -> PyTensor graph -> linkers and
  kernels.
- ``padding.svg`` (padding.md): a 1-D input row with its 'same' padding cells and the dilated
  kernel taps of a few outputs, for the page's worked examples; the padding comes from
  `dilnet.shapes.same_padding`.
- ``receptive-field-growth.svg`` (receptive-fields.md): the receptive field after each
  convolution of a `DilatedStack` and of a plain stack of the same depth, read from networks
  built by `dilnet.build`.

The output is deterministic (fixed hash salt, no date), so redrawing unchanged figures leaves
the files unchanged.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from dilnet import Sequential, build
from dilnet import blocks as B
from dilnet.layers import ConvLayer
from dilnet.shapes import conv_output_length, dilated_extent, same_padding

HERE = Path(__file__).resolve().parent

plt.rcParams.update(
    {
        "svg.hashsalt": "dilnet",  # fixed element ids: the same drawing gives the same file
        "svg.fonttype": "none",  # text stays text (smaller, searchable, no glyph paths)
        "font.family": "DejaVu Sans",
        "font.size": 10,
    }
)

BLUE, ORANGE, GREEN, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"
PAD_FILL, INPUT_FILL, OUTPUT_FILL = "#e6e6e6", "#ffffff", "#eef4fb"


def save(fig, name):
    fig.savefig(HERE / name, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {HERE / name}")


# ---------------------------------------------------------------------------------------------
# pipeline.svg


def _box(ax, x, y, w, h, title, lines, colour):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor="white",
            edgecolor=colour,
            linewidth=1.6,
        )
    )
    ax.text(x + w / 2, y + h - 0.16, title, ha="center", va="top", fontweight="bold", color=colour)
    ax.text(
        x + w / 2,
        y + h - 0.46,
        "\n".join(lines),
        ha="center",
        va="top",
        fontsize=8.5,
        linespacing=1.45,
        color="#333333",
    )


def _arrow(ax, start, end, label=None, colour=GREY):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=14,
            linewidth=1.3,
            color=colour,
            shrinkA=2,
            shrinkB=2,
        )
    )
    if label:
        x, y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(
            x, y + 0.08, label, ha="center", va="bottom", fontsize=8, color=GREY, style="italic"
        )


def pipeline():
    w, h, gap, y = 2.45, 2.1, 0.75, 2.3
    fig, ax = plt.subplots(figsize=(14.2, 4.9))
    ax.set_xlim(0, 5 * w + 4 * gap + 0.3)
    ax.set_ylim(0, 4.9)
    ax.set_axis_off()
    stages = [
        (
            "blocks",
            ["dilnet.blocks", "frozen attrs specs", "Sequential([...])", "to_config(): JSON"],
            BLUE,
        ),
        (
            "compiler",
            [
                "dilnet.build",
                "'same' padding, shapes,",
                "receptive fields, checks,",
                "layer names from paths",
            ],
            BLUE,
        ),
        (
            "layers",
            ["dilnet.layers", "Lasagne's layer graph", "get_output(...)", "get_all_params(...)"],
            BLUE,
        ),
        (
            "PyTensor graph",
            [
                "dilated_conv(...): the",
                "DilatedCorr Ops + grads",
                "pytensor.grad(...)",
                "pytensor.function(...)",
            ],
            ORANGE,
        ),
        (
            "linkers (modes)",
            [
                "CVM, NUMBA,",
                "FAST_COMPILE: perform",
                "JAX: lax.conv",
                "PYTORCH: torch conv",
            ],
            GREEN,
        ),
    ]
    xs = [0.15 + i * (w + gap) for i in range(len(stages))]
    for x, (title, lines, colour) in zip(xs, stages, strict=True):
        _box(ax, x, y, w, h, title, lines, colour)
    for i, label in enumerate(["build", "get_output", "Ops", "compile"]):
        _arrow(ax, (xs[i] + w, y + h / 2), (xs[i + 1], y + h / 2), label)

    # under the linkers: the CPU kernels that `perform` calls
    _box(
        ax,
        xs[4],
        0.2,
        w,
        1.5,
        "CPU kernels",
        ["set_cpu_kernels(...)", "torch: oneDNN", "blas: numpy + BLAS"],
        GREEN,
    )
    _arrow(ax, (xs[4] + w / 2, y), (xs[4] + w / 2, 1.7), "perform")

    # under the first stages: what uses the compiled network
    _box(
        ax,
        xs[0],
        0.2,
        2 * w + gap,
        1.5,
        "Model, tiled inference, zoo, CLI",
        [
            "dilnet.model.Model: compile, fit, predict, save",
            "dilnet.inference.predict_volume: exact tiles",
            "dilnet_zoo, the dilnet command",
        ],
        GREY,
    )
    _arrow(ax, (xs[1] + w / 2, y), (xs[1] + w / 2, 1.7), "Network")
    ax.text(
        0.15,
        4.8,
        "Data flows one way: nothing lower imports anything higher.",
        ha="left",
        va="top",
        fontsize=9,
        color=GREY,
    )
    save(fig, "pipeline.svg")


# ---------------------------------------------------------------------------------------------
# padding.svg

#: (title, n, kernel, stride, dilation, outputs whose taps are drawn): the page's examples
PADDING_CASES = [
    ("odd kernel: k=3, d=1, s=1, n=8", 8, 3, 1, 1, (0, 7)),
    ("even kernel: k=4, d=1, s=1, n=8", 8, 4, 1, 1, (0, 7)),
    ("stride 2: k=3, d=1, s=2, n=8", 8, 3, 2, 1, (0, 3)),
    ("dilation 4: k=3, d=4, s=1, n=8", 8, 3, 1, 4, (0, 5)),
]


def _padding_row(ax, title, n, k, s, d, drawn):
    before, after = same_padding(n, k, s, d)
    out = conv_output_length(n, k, s, "same", d)
    extent = dilated_extent(k, d)
    cells = before + n + after
    left = -before  # input coordinate of the first (padding) cell
    y_in, y_out = 1.6, 0.0
    for i in range(cells):
        pos = left + i
        padding = pos < 0 or pos >= n
        ax.add_patch(
            Rectangle(
                (pos, y_in),
                1,
                1,
                facecolor=PAD_FILL if padding else INPUT_FILL,
                edgecolor=GREY,
                linewidth=0.8,
            )
        )
        ax.text(
            pos + 0.5,
            y_in + 0.5,
            "0" if padding else str(pos),
            ha="center",
            va="center",
            fontsize=8,
            color=GREY if padding else "black",
        )

    def centre(o):  # each output sits under the centre of its window
        return o * s - before + (extent - 1) / 2

    for o in range(out):
        x = centre(o)
        ax.add_patch(
            Rectangle((x, y_out), 1, 1, facecolor=OUTPUT_FILL, edgecolor=BLUE, linewidth=0.8)
        )
        ax.text(x + 0.5, y_out + 0.5, str(o), ha="center", va="center", fontsize=8, color=BLUE)
    for colour, o in zip((ORANGE, GREEN), drawn, strict=True):
        first = o * s - before
        taps = [first + m * d for m in range(k)]
        for t in taps:
            ax.add_patch(
                Rectangle(
                    (t + 0.08, y_in + 0.08), 0.84, 0.84, fill=False, edgecolor=colour, linewidth=2
                )
            )
            ax.plot([t + 0.5, centre(o) + 0.5], [y_in, y_out + 1], color=colour, linewidth=1.1)
    ax.text(left - 0.4, y_in + 0.5, "input", ha="right", va="center", fontsize=8.5)
    ax.text(left - 0.4, y_out + 0.5, "output", ha="right", va="center", fontsize=8.5, color=BLUE)
    ax.set_title(
        f"{title}:  extent {extent}, pad ({before}, {after}), {out} outputs",
        loc="left",
        fontsize=9.5,
    )
    return left, left + cells


def padding():
    spans = []
    fig, axes = plt.subplots(len(PADDING_CASES), 1, figsize=(8.5, 2.0 * len(PADDING_CASES)))
    for ax, case in zip(axes, PADDING_CASES, strict=True):
        spans.append(_padding_row(ax, *case))
    lo = min(s[0] for s in spans) - 3.2
    hi = max(s[1] for s in spans) + 0.3
    for ax in axes:
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.2, 2.8)
        ax.set_aspect("equal")
        ax.set_axis_off()
    fig.text(
        0.5,
        0.005,
        "grey: zero padding ('same', Keras/TensorFlow rule); outlined: the "
        "kernel taps of the coloured outputs",
        ha="center",
        fontsize=8.5,
        color=GREY,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save(fig, "padding.svg")


# ---------------------------------------------------------------------------------------------
# receptive-field-growth.svg

GROWTH_DILATIONS = (1, 2, 4, 8, 16)


def _conv_fields(spec):
    """Receptive field size (axis 0) after each convolution of the built network."""
    network = build(spec)
    return [
        info.receptive_field[0].size for info in network.layers if isinstance(info.layer, ConvLayer)
    ]


def growth():
    depth = len(GROWTH_DILATIONS)
    dilated = _conv_fields(
        Sequential([B.Input(channels=1), B.DilatedStack(filters=1, dilations=GROWTH_DILATIONS)])
    )
    plain = _conv_fields(
        Sequential([B.Input(channels=1), B.DilatedStack(filters=1, dilations=(1,) * depth)])
    )
    layers = list(range(1, depth + 1))
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    ax.plot(layers, dilated, "o-", color=BLUE, label=f"DilatedStack(dilations={GROWTH_DILATIONS})")
    ax.plot(layers, plain, "s-", color=ORANGE, label=f"plain stack, dilations={(1,) * depth}")
    for x, a, b in zip(layers, dilated, plain, strict=True):
        ax.annotate(
            str(a),
            (x, a),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
            color=BLUE,
        )
        if a == b:
            continue
        ax.annotate(
            str(b),
            (x, b),
            textcoords="offset points",
            xytext=(0, -13),
            ha="center",
            fontsize=8,
            color=ORANGE,
        )
    ax.set_xlabel("3-wide convolutions so far")
    ax.set_ylabel("receptive field (voxels per axis)")
    ax.set_xticks(layers)
    ax.set_ylim(-8, max(dilated) * 1.15)
    ax.set_yticks(range(0, max(dilated) + 10, 10))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8.5, loc="upper left")
    ax.set_title("Same depth and parameters: exponential vs linear growth", fontsize=10)
    fig.tight_layout()
    save(fig, "receptive-field-growth.svg")


def main():
    pipeline()
    padding()
    growth()


if __name__ == "__main__":
    main()

"""`format_summary`: a compiled network as a text table, like Keras's ``model.summary()``.

Beyond Keras's columns (layer, output shape, parameters) it shows each layer's block path, its
padding and dilation, and its receptive field; under the table the parameter totals
(trainable / non-trainable), the receptive field of the output and the activation memory for
the input size the network was built for. Padding and receptive fields come from
`dilnet.geometry`, the same walk over the layer graph the compiler and tiled inference use.
"""

from ..geometry import layer_padding, receptive_fields, walk
from ..utils import format_bytes

__all__ = ["format_summary"]


def _axes(values) -> str:
    """``3`` when all axes agree, else ``3x3x1``."""
    values = [str(v) for v in values]
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _padding(padding) -> str:
    if padding is None:
        return ""
    if any(p is None for p in padding):
        return "?"
    return _axes(f"{b}" if b == a else f"{b}+{a}" for b, a in padding)


def _shape(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


def _field(fields) -> str:
    return _axes(f.size for f in fields) + (
        "" if all(f.jump == 1 for f in fields) else f" /{_axes(f.jump for f in fields)}"
    )


def format_summary(network, batch_size=None) -> str:
    """The layer table of a `dilnet.network.Network` as text.

    Columns: block path, layer (name and type), output shape (``?`` for lengths known only
    at run time), padding per axis (``b+a`` when before and after differ), dilation,
    receptive field (size per axis, ``/jump`` when outputs are further apart than inputs)
    and parameter count. Then the totals, the receptive field of the output and the memory
    of all layer outputs for one batch (of `batch_size`, default the network's or 1) when
    all lengths are known.
    """
    import pytensor

    fields = receptive_fields(walk(network.output_layer))
    rows = [("Block", "Layer (type)", "Output shape", "Padding", "Dilation", "Receptive field",
             "Params")]  # fmt: skip
    for info in network.layers:
        layer = info.layer
        role = (layer.name or "").removeprefix(f"{info.path}.")
        count = sum(int(p.get_value(borrow=True).size) for p in layer.get_params())
        dilation = getattr(layer, "dilation", None)
        rows.append((
            info.path,
            f"{role} ({type(layer).__name__})",
            _shape(layer.output_shape),
            _padding(layer_padding(layer)),
            "" if dilation is None else _axes(dilation),
            _field(fields[layer]),
            f"{count:,}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {6}

    def line(row):
        return "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "─" * len(line(rows[0]))
    total = network.count_params()
    trainable = network.count_params(trainable=True)
    rank = network.rank
    out = [
        f"Model: {type(network.spec).__name__}, {rank}D, input {_shape(network.input_shape)}",
        rule,
        line(rows[0]),
        rule,
        *(line(r) for r in rows[1:]),
        rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        f"Receptive field: {_field(fields[network.output_layer])} voxels"
        + ("" if rank == 1 else " (per axis)"),
    ]
    batch = batch_size or network.input_shape[0] or 1
    memory = network.activation_bytes(batch_size=batch)
    if memory is None:
        out.append(
            "Activation memory: unknown for spatial size "
            f"{_shape(network.input_shape[2:])}; build with spatial=... (or summary(input_size=...))"
        )
    else:
        size = "x".join(map(str, network.input_shape[2:]))
        out.append(
            f"Activation memory: {format_bytes(memory)} for a batch of {batch} at {size} "
            f"({pytensor.config.floatX}, all layer outputs of one forward pass)"
        )
    return "\n".join(out)

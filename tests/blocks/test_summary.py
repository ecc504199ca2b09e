"""summary(): the table's rows, totals and memory against values computed independently."""

import numpy as np

from dilnet import Sequential, build, format_summary
from dilnet import blocks as B


def _rows(text):
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"─"}]
    return lines[rules[1] + 1 : rules[2]], lines[rules[2] + 1 :]


def test_summary_rows_totals_and_memory():
    spec = Sequential(
        [
            B.Input(channels=1, spatial=(None, None)),
            B.Conv(filters=2, kernel=3, activation="linear"),
            B.DilatedStack(filters=2, dilations=(2,), batch_norm=True),
            B.Classifier(num_classes=3),
        ]
    )
    text = spec.summary(input_size=(4, 5), print_fn=None)
    rows, footer = _rows(text)
    network = build(spec, spatial=(4, 5))
    assert len(rows) == len(network.layers) == 7
    header = text.splitlines()[2]
    for column in (
        "Block",
        "Layer (type)",
        "Output shape",
        "Padding",
        "Dilation",
        "Receptive field",
        "Params",
    ):
        assert column in header
    cells = [row.split() for row in rows]
    assert cells[1][:3] == ["blocks[1]", "conv", "(ConvLayer)"]
    assert rows[2].startswith("blocks[2]") and "conv0 (ConvLayer)" in rows[2]
    # padding 2 and dilation 2 per axis, field 3 + 4 = 7, weights 2*2*3*3 and no bias (BN)
    assert rows[2].split()[-5:] == ["5)", "2", "2", "7", "36"]
    assert "(?, 2, 4, 5)" in rows[2]
    # parameters: all values' sizes, counted with numpy
    values = [p.get_value() for p in network.get_params()]
    total = sum(v.size for v in values)
    trainable = sum(p.get_value().size for p in network.get_params(trainable=True))
    assert f"Total params: {total:,}" in footer
    assert f"Trainable params: {trainable:,}" in footer
    assert f"Non-trainable params: {total - trainable:,}" in footer
    assert total - trainable == 4  # BN running mean and inv_std, 2 channels each
    # receptive field: 3, then dilation 2 (extent 5) -> 3 + 4 = 7, then 1x1
    assert "Receptive field: 7 voxels (per axis)" in footer
    # memory: every layer output but the input, batch 1, 4x5 voxels, 8-byte floats
    channels = [2, 2, 2, 2, 3, 3]  # conv, conv0, bn0, relu0, classifier conv, softmax
    expected = sum(c * 4 * 5 * np.dtype("float64").itemsize for c in channels)
    assert network.activation_bytes(batch_size=1) == expected
    assert expected == 2240
    # the summary counts in the dtype a Model has by default, float32: half of that
    assert expected // 2 == 1120
    assert footer[-1].startswith("Activation memory: 1.09 KiB for a batch of 1 at 4x5 (float32")


def test_summary_with_unknown_lengths_says_how_to_get_memory():
    spec = Sequential([B.Input(channels=1), B.Conv(filters=1, stride=2)])
    text = format_summary(build(spec))
    assert "(?, 1, ?, ?, ?)" in text
    assert "Activation memory: unknown for spatial size (?, ?, ?)" in text
    # 'same' with stride 2 on an unknown length: padding unknown, shown as '?'
    row = _rows(text)[0][1]
    assert row.endswith("(?, 1, ?, ?, ?)  ?        1         3 /2                 28")


def test_summary_prints_by_default(capsys):
    text = Sequential([B.Input(channels=1, spatial=(3,)), B.Conv(filters=1)]).summary()
    assert capsys.readouterr().out == text + "\n"

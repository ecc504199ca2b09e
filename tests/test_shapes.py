"""Table-driven checks of dilnet.shapes against hand-computed values and peers' documented examples."""

import pytest

from dilnet.shapes import (
    ReceptiveField,
    conv_output_length,
    conv_output_shape,
    dilated_extent,
    receptive_field,
    resolve_padding,
    same_padding,
)


@pytest.mark.parametrize(
    ("k", "d", "expected"),
    [(1, 1, 1), (3, 1, 3), (3, 2, 5), (3, 4, 9), (2, 3, 4), (5, 16, 65), (None, 2, None)],
)
def test_dilated_extent(k, d, expected):
    assert dilated_extent(k, d) == expected


# (n, k, stride, dilation) -> (before, after); Keras/TF: out = ceil(n/s),
# total = max(0, (out-1)*s + extent - n), before = total // 2.
@pytest.mark.parametrize(
    ("n", "k", "s", "d", "expected"),
    [
        (10, 3, 1, 1, (1, 1)),
        (10, 4, 1, 1, (1, 2)),  # even kernel: extra element after
        (10, 3, 1, 2, (2, 2)),  # extent 5
        (10, 2, 1, 3, (1, 2)),  # extent 4 -> total 3, extra after
        (7, 3, 2, 1, (1, 1)),  # out 4: (4-1)*2 + 3 - 7 = 2
        (8, 3, 2, 1, (0, 1)),  # TF doc example: out 4, total (3*2+3-8)=1
        (13, 6, 5, 1, (1, 2)),  # TF's classic "same" example: out 3, total (2*5+6-13)=3
        (5, 1, 3, 1, (0, 0)),  # total would be negative -> 0
        (9, 3, 3, 2, (1, 1)),  # out 3, extent 5: 2*3 + 5 - 9 = 2
        (None, 3, 1, 1, (1, 1)),  # stride 1 needs no length
        (None, 3, 2, 1, None),
    ],
)
def test_same_padding(n, k, s, d, expected):
    assert same_padding(n, k, s, d) == expected


@pytest.mark.parametrize(
    ("n", "k", "s", "pad", "d", "expected"),
    [
        # valid
        (10, 3, 1, "valid", 1, 8),
        (10, 3, 1, "valid", 2, 6),
        (10, 3, 2, "valid", 1, 4),
        (10, 3, 3, 0, 3, 2),  # extent 7: (10-7)//3+1
        # full: pad extent-1 on each side
        (10, 3, 1, "full", 1, 12),
        (10, 3, 1, "full", 2, 14),
        (10, 3, 2, "full", 1, 6),  # (10+4-3)//2+1
        # same: ceil(n/s)
        (10, 3, 1, "same", 4, 10),
        (10, 4, 1, "same", 1, 10),
        (10, 3, 2, "same", 1, 5),
        (11, 3, 2, "same", 3, 6),
        (11, 5, 3, "same", 2, 4),
        # ints and (before, after) pairs
        (10, 3, 1, 1, 1, 10),
        (10, 3, 1, 2, 1, 12),
        (10, 3, 1, (0, 2), 1, 10),
        (10, 3, 2, (1, 0), 2, 4),  # (10+1-5)//2+1
        # PyTorch's Conv1d doc formula: floor((L + 2p - d(k-1) - 1)/s + 1)
        (50, 3, 2, 1, 2, 24),  # floor(47/2 + 1)
        (50, 5, 3, 4, 3, 16),  # floor((50+8-12-1)/3 + 1)
        # unknown length passes through
        (None, 3, 1, "same", 1, None),
        (None, 3, 2, (1, 1), 1, None),
    ],
)
def test_conv_output_length(n, k, s, pad, d, expected):
    assert conv_output_length(n, k, s, pad, d) == expected


def test_conv_output_length_kernel_too_big_is_not_positive():
    assert conv_output_length(4, 3, 1, "valid", 3) == -2  # extent 7 > 4: callers report it


def test_conv_output_shape_per_axis():
    # Keras Conv3D doc: input (28, 28, 28), kernel 3, 'valid' -> (26, 26, 26)
    assert conv_output_shape((28, 28, 28), (3, 3, 3), (1, 1, 1), ("valid",) * 3, (1, 1, 1)) == (
        26,
        26,
        26,
    )
    assert conv_output_shape(
        (9, 8, None), (3, 2, 3), (2, 1, 1), ("same", (0, 1), "full"), (1, 3, 2)
    ) == (
        5,
        6,  # 8 + 1 - 4 + 1
        None,
    )


@pytest.mark.parametrize(
    ("pad", "expected"),
    [("valid", (0, 0)), ("full", (4, 4)), ("same", (2, 2)), (3, (3, 3)), ((1, 4), (1, 4))],
)
def test_resolve_padding(pad, expected):
    assert resolve_padding(10, 3, pad, 1, 2) == expected


def test_resolve_padding_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown padding mode 'half'"):
        resolve_padding(10, 3, "half")


def test_receptive_field_single_layer():
    # one 3-tap 'same' layer: sees inputs -1, 0, 1 for output 0
    assert receptive_field([(3, 1, 1, 1)]) == ReceptiveField(size=3, jump=1, start=-1)


def test_receptive_field_context_module():
    # Yu & Koltun's context module: 3-tap layers with dilations 1,1,2,4,8,16,1 then 1x1 -> 67
    dil = (1, 1, 2, 4, 8, 16, 1)
    layers = [(3, 1, d, d) for d in dil] + [(1, 1, 1, 0)]
    rf = receptive_field(layers)
    assert rf == ReceptiveField(67, 1, -33)
    assert rf.centre == 0


def test_receptive_field_with_strides_and_even_kernel():
    # conv k=4 s=2 pad 1 -> size 4, jump 2, start -1; then k=3 d=2 s=1 pad 2:
    # size 4 + (5-1)*2 = 12, start -1 - 2*2 = -5, jump 2
    rf = receptive_field([(4, 2, 1, 1), (3, 1, 2, 2)])
    assert rf == ReceptiveField(12, 2, -5)
    assert rf.centre == 0.5


def test_receptive_field_composes_from_a_given_field():
    first = receptive_field([(3, 2, 1, 1)])
    assert receptive_field([(3, 1, 1, 1)], first) == receptive_field([(3, 2, 1, 1), (3, 1, 1, 1)])

"""Table-driven checks of dilnet.shapes against hand-computed values and peers' documented examples."""

import pytest

from dilnet.errors import ConfigError
from dilnet.shapes import (
    KernelMisfit,
    conv_output_length,
    conv_output_shape,
    dilated_extent,
    kernel_misfit,
    normalize_pad,
    resolve_padding,
    same_padding,
    transposed_conv_output_length,
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
    with pytest.raises(ConfigError, match="Invalid pad: 'half' is no padding mode"):
        resolve_padding(10, 3, "half")


# (n, k, stride, pad, dilation) -> length; PyTorch's ConvTranspose1d doc formula:
# (L - 1) * s - 2p + d(k - 1) + 1
@pytest.mark.parametrize(
    ("n", "k", "s", "pad", "d", "expected"),
    [
        (5, 3, 1, "valid", 1, 7),  # 'valid' crops nothing: n + extent - 1
        (5, 3, 2, "valid", 1, 11),  # 4 * 2 + 3
        (5, 3, 2, 1, 1, 9),  # PyTorch: 4 * 2 - 2 + 2 + 1
        (5, 3, 2, 1, 2, 11),  # PyTorch: 4 * 2 - 2 + 4 + 1
        (7, 4, 3, (0, 2), 1, 20),  # 6 * 3 + 4 - 0 - 2
        (5, 3, 1, "full", 2, 1),  # 'full' crops extent - 1 = 4 on each side: 4 + 5 - 8
        (5, 3, 2, "same", 1, 10),  # 'same': n * stride
        (6, 4, 3, "same", 2, 18),
        (2, 3, 1, "full", 3, -4),  # 1 + 7 - 12: callers report it
        (None, 3, 2, 1, 1, None),
    ],
)
def test_transposed_conv_output_length(n, k, s, pad, d, expected):
    assert transposed_conv_output_length(n, k, s, pad, d) == expected


@pytest.mark.parametrize(("n", "k", "s", "pad", "d"),
                         [(5, 3, 1, "same", 1), (6, 4, 1, 1, 2), (9, 2, 1, (1, 0), 3)])  # fmt: skip
def test_transposed_conv_inverts_the_stride_1_convolution(n, k, s, pad, d):
    assert conv_output_length(transposed_conv_output_length(n, k, s, pad, d), k, s, pad, d) == n


@pytest.mark.parametrize(
    ("pad", "n", "expected"),
    [
        ("valid", 2, ((0, 0), (0, 0))),
        ("same", 3, ("same",) * 3),
        ("full", 1, ("full",)),
        (2, 2, ((2, 2), (2, 2))),
        ((1, (0, 3)), 2, ((1, 1), (0, 3))),
        ([(2, 1)], 1, ((2, 1),)),
    ],
)
def test_normalize_pad(pad, n, expected):
    assert normalize_pad(pad, n) == expected


@pytest.mark.parametrize(
    ("pad", "match"),
    [
        ("half", r"^layer: invalid value for `crop`. Expected 'valid', 'full', 'same', a "
                 r"non-negative int, or an iterable of int or \(before, after\) pairs, "
                 r"length 2; received crop='half'"),
        ((1, 2, 3), r"length 2; received crop=\(1, 2, 3\)"),
        (-1, r"\(no negative values\); received crop=-1"),
        ((1, (2, -1)), r"\(no negative values\); received crop=\(1, \(2, -1\)\)"),
        ((1, (2, 3, 4)), r"received crop=\(1, \(2, 3, 4\)\)"),
        (1.5, r"received crop=1.5"),
    ],
)  # fmt: skip
def test_normalize_pad_names_where_and_what(pad, match):
    with pytest.raises(ConfigError, match=match):
        normalize_pad(pad, 2, "layer", "crop")


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "pad", "dilation", "expected"),
    [
        ((10, 10), (3, 3), (1, 1), ("valid", "valid"), (1, 4), None),  # extent 9 fits 10
        ((10, 8), (3, 3), (1, 1), ("valid", "valid"), (1, 4), KernelMisfit(1, 8, 3, 4, 9, (0, 0))),
        ((8,), (3,), (1,), ((0, 1),), (4,), None),  # 8 + 1 = 9
        ((8,), (3,), (2,), ("same",), (40,), None),  # 'same' always fits
        ((2,), (4,), (1,), ("full",), (1,), None),
        ((None, 3), (9, 9), (1, 1), (0, 0), (1, 1), KernelMisfit(1, 3, 9, 1, 9, (0, 0))),
        ((3, 3), (None, 2), (1, 1), (0, 0), (1, 1), None),  # unknown kernel: not checked
        # axis 0: extent 5 fits 5; axis 1: (4 + 1 - 6) // 2 + 1 = 0
        ((5, 4), (3, 6), (1, 2), (0, (1, 0)), (2, 1), KernelMisfit(1, 4, 6, 1, 6, (1, 0))),
    ],
)
def test_kernel_misfit(shape, kernel, stride, pad, dilation, expected):
    assert kernel_misfit(shape, kernel, stride, pad, dilation) == expected

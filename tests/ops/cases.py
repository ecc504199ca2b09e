"""The grid of correlation problems every implementation is checked on."""

from typing import NamedTuple


class Case(NamedTuple):
    spatial: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple  # (before, after) per axis
    groups: int = 1
    flip: bool = False
    dtype: str = "float64"
    batch: int = 2
    in_per_group: int = 2
    out_per_group: int = 3

    @property
    def id(self):
        return (
            f"{len(self.spatial)}d-n{self.spatial}-k{self.kernel}-s{self.stride}-d{self.dilation}"
            f"-p{self.pads}-g{self.groups}{'-flip' if self.flip else ''}-{self.dtype}"
        ).replace(" ", "")


CASES = [
    # 1D
    Case((9,), (3,), (1,), (1,), ((1, 1),)),
    Case((11,), (2,), (1,), (3,), ((1, 2),), dtype="float32"),  # even kernel, 'same' for extent 4
    Case((13,), (3,), (3,), (2,), ((0, 0),), flip=True),
    Case((10,), (4,), (2,), (1,), ((2, 1),), groups=2),
    # 2D
    Case((7, 8), (3, 3), (1, 1), (2, 1), ((2, 2), (1, 1))),  # mixed dilation
    Case((8, 7), (2, 3), (2, 1), (1, 4), ((0, 1), (4, 4)), dtype="float32"),  # even x odd kernel
    Case((9, 9), (3, 2), (3, 2), (3, 2), ((1, 3), (0, 2)), groups=3, flip=True),
    Case((6, 10), (1, 3), (1, 3), (1, 1), ((0, 0), (1, 1)), batch=1),
    # 3D
    Case((5, 6, 7), (3, 3, 3), (1, 1, 1), (1, 2, 4), ((1, 1), (2, 2), (4, 4))),
    Case((6, 5, 6), (2, 3, 2), (1, 2, 3), (2, 1, 1), ((1, 1), (0, 2), (1, 0)), dtype="float32"),
    Case((7, 6, 5), (3, 2, 3), (2, 1, 1), (3, 2, 1), ((3, 3), (1, 1), (0, 0)), groups=2, flip=True),
    Case(
        (5, 5, 5),
        (3, 3, 3),
        (3, 3, 2),
        (1, 1, 2),
        ((0, 0), (2, 1), (3, 3)),
        batch=1,
        dtype="float32",
    ),
    # float32 with stride 1: the torch kernels' oneDNN paths (input gradient as a forward
    # correlation, padded by d * (k - 1) - pad: negative where the padding exceeds the reach)
    Case((9,), (3,), (1,), (2,), ((5, 0),), batch=1, dtype="float32"),
    Case((7, 9), (3, 2), (1, 1), (1, 3), ((2, 0), (1, 2)), groups=2, batch=1, dtype="float32"),
    Case((6, 5, 7), (3, 3, 3), (1, 1, 1), (2, 1, 3), ((2, 2), (1, 1), (3, 3)), dtype="float32"),
    # undilated: batch 2 takes oneDNN's own weight gradient, batch 1 the trick
    Case((5, 6, 7), (3, 3, 3), (1, 1, 1), (1, 1, 1), ((1, 1), (1, 1), (1, 1)), dtype="float32"),
    Case(
        (4, 5, 6),
        (3, 3, 3),
        (1, 1, 1),
        (1, 1, 1),
        ((1, 1), (0, 2), (1, 1)),
        batch=1,
        dtype="float32",
    ),
    Case(
        (5, 6, 4),
        (1, 3, 2),
        (1, 1, 1),
        (1, 2, 1),
        ((1, 1), (0, 3), (1, 0)),
        batch=3,
        flip=True,
        dtype="float32",
    ),
]

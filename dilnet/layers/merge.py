"""Layers that combine several inputs: elementwise merges and concatenation, with cropping."""

import pytensor.tensor as pt

from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .base import MergeLayer, describe

__all__ = [
    "ConcatLayer",
    "ElemwiseMergeLayer",
    "ElemwiseSumLayer",
    "autocrop",
    "autocrop_array_shapes",
    "concat",
]

CROP_MODES = (None, "lower", "center", "upper")


def _check_modes(where, cropping, rank=None):
    """`cropping`'s entries are crop modes and, when `rank` is known, at most `rank` of them."""
    if cropping is None:
        return
    if (
        not isinstance(cropping, tuple | list)
        or (rank is not None and len(cropping) > rank)
        or any(c not in CROP_MODES for c in cropping)
    ):
        most = "" if rank is None else f"up to {rank} "
        raise ConfigError(
            invalid(
                where,
                "cropping",
                f"None or {most}entries of None/'lower'/'center'/'upper', one per axis",
                cropping,
            )
        )


def _known(shapes):
    """Whether every input shape is a sequence (duck-typed inputs may not say)."""
    return all(isinstance(s, tuple | list) for s in shapes)


def _check_cropping(layer, cropping):
    """None, or the crop modes as a tuple (padded with None to the inputs' rank when known,
    as Lasagne pads a shorter sequence)."""
    if cropping is None:
        return None
    rank = len(layer.input_shapes[0]) if _known(layer.input_shapes) else None
    _check_modes(describe(layer), cropping, rank)
    return tuple(cropping) + (None,) * ((rank or 0) - len(cropping))


def _same_rank(where, ranks, what):
    if len(set(ranks)) != 1:
        raise ShapeError(f"{where}: cannot crop inputs of different ranks: {what}.")


def autocrop_array_shapes(input_shapes, cropping):
    """Shapes after `autocrop`: cropped axes take the smallest known length.

    Raises `ConfigError` for an unknown crop mode and `ShapeError` for inputs of different
    ranks (both `ValueError`s, as Lasagne).
    """
    if cropping is None:
        return [tuple(s) for s in input_shapes]
    _same_rank("autocrop_array_shapes", [len(s) for s in input_shapes],
               f"shapes {list(input_shapes)}")  # fmt: skip
    _check_modes("autocrop_array_shapes", cropping, len(input_shapes[0]) if input_shapes else None)
    out = [list(s) for s in input_shapes]
    for axis, mode in enumerate(cropping):
        if mode is None:
            continue
        lengths = [s[axis] for s in input_shapes]
        # an unknown length may be the smallest: the cropped length is then unknown too
        smallest = None if None in lengths else min(lengths)
        for s in out:
            s[axis] = smallest
    return [tuple(s) for s in out]


def autocrop(inputs, cropping):
    """Crop `inputs` to a common length on each axis whose `cropping` entry is not None.

    'lower' keeps the start, 'upper' the end, 'center' the middle (the extra element of an odd
    difference is cut at the end).
    """
    if cropping is None:
        return list(inputs)
    _check_modes("autocrop", cropping)
    inputs = [pt.as_tensor_variable(x) for x in inputs]
    _same_rank("autocrop", [x.ndim for x in inputs], f"ndims {[x.ndim for x in inputs]}")
    _check_modes("autocrop", cropping, inputs[0].ndim if inputs else None)
    ndim = inputs[0].ndim
    slices = [[slice(None)] * ndim for _ in inputs]
    for axis, mode in enumerate(cropping):
        if mode is None:
            continue
        lengths = [x.shape[axis] for x in inputs]
        smallest = lengths[0]
        for length in lengths[1:]:
            smallest = pt.minimum(smallest, length)
        for i, length in enumerate(lengths):
            if mode == "lower":
                slices[i][axis] = slice(0, smallest)
            elif mode == "upper":
                slices[i][axis] = slice(length - smallest, length)
            else:
                start = (length - smallest) // 2
                slices[i][axis] = slice(start, start + smallest)
    return [x[tuple(s)] for x, s in zip(inputs, slices, strict=True)]


def _check_equal(layer, shapes, skip_axis=None):
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ShapeError(f"{describe(layer)}: inputs have different ranks: shapes {shapes}.")
    for axis in range(len(shapes[0])):
        if axis == skip_axis:
            continue
        known = {s[axis] for s in shapes if s[axis] is not None}
        if len(known) > 1:
            raise ShapeError(
                f"{describe(layer)}: inputs disagree on axis {axis}: shapes {shapes}"
                + (" (set `cropping` to crop them to a common size)." if axis >= 2 else ".")
            )


class ElemwiseMergeLayer(MergeLayer):
    """Combine inputs of equal shape with a binary elementwise `merge_function`
    (e.g. ``pytensor.tensor.mul``), optionally after cropping them (`autocrop`)."""

    def __init__(self, incomings, merge_function, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        if not callable(merge_function):
            raise ConfigError(
                invalid(describe(self), "merge_function", "a callable", merge_function)
            )
        self.merge_function = merge_function
        self.cropping = _check_cropping(self, cropping)
        if _known(self.input_shapes):
            _check_equal(self, autocrop_array_shapes(self.input_shapes, self.cropping))

    def get_output_shape_for(self, input_shapes):
        shapes = autocrop_array_shapes(input_shapes, self.cropping)
        _check_equal(self, shapes)
        return tuple(
            next((s[axis] for s in shapes if s[axis] is not None), None)
            for axis in range(len(shapes[0]))
        )

    def get_output_for(self, inputs, **kwargs):
        inputs = autocrop(inputs, self.cropping)
        out = inputs[0]
        for x in inputs[1:]:
            out = self.merge_function(out, x)
        return out


class ElemwiseSumLayer(ElemwiseMergeLayer):
    """Weighted elementwise sum ``sum_i coeffs[i] * inputs[i]`` (`coeffs` a number or a list)."""

    def __init__(self, incomings, coeffs=1, cropping=None, **kwargs):
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, list | tuple):
            if len(coeffs) != len(self.input_shapes):
                raise ConfigError(
                    invalid(
                        describe(self),
                        "coeffs",
                        f"a number or {len(self.input_shapes)} numbers (one per input)",
                        coeffs,
                    )
                )
        else:
            coeffs = [coeffs] * len(self.input_shapes)
        self.coeffs = list(coeffs)

    def get_output_for(self, inputs, **kwargs):
        inputs = autocrop(inputs, self.cropping)
        out = None
        for c, x in zip(self.coeffs, inputs, strict=True):
            term = x if c == 1 else x * c
            out = term if out is None else out + term
        return out


class ConcatLayer(MergeLayer):
    """Concatenate inputs along `axis` (default 1: channels); other axes must agree or be
    cropped (`cropping`)."""

    def __init__(self, incomings, axis=1, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        where = describe(self)
        if not is_int(axis):
            raise ConfigError(invalid(where, "axis", "an int", axis))
        self.axis = int(axis)
        if _known(self.input_shapes):
            rank = len(self.input_shapes[0])
            if not -rank <= axis < rank:
                raise ConfigError(invalid(where, "axis", f"an axis of {rank}-d inputs", axis))
            self.axis = axis % rank
        self.cropping = _check_cropping(self, cropping)
        if self.cropping is not None:
            # as Lasagne: the inputs keep their lengths along the concatenation axis
            modes = list(self.cropping)
            if -len(modes) <= self.axis < len(modes):
                modes[self.axis] = None
            self.cropping = tuple(modes)
        if _known(self.input_shapes):
            _check_equal(self, autocrop_array_shapes(self.input_shapes, self.cropping), self.axis)

    def get_output_shape_for(self, input_shapes):
        shapes = autocrop_array_shapes(input_shapes, self.cropping)
        concat_axis = self.axis % len(shapes[0])
        _check_equal(self, shapes, concat_axis)
        out = []
        for axis in range(len(shapes[0])):
            lengths = [s[axis] for s in shapes]
            if axis == concat_axis:
                out.append(None if None in lengths else sum(lengths))
            else:
                out.append(next((n for n in lengths if n is not None), None))
        return tuple(out)

    def get_output_for(self, inputs, **kwargs):
        return pt.concatenate(autocrop(inputs, self.cropping), axis=self.axis)


concat = ConcatLayer

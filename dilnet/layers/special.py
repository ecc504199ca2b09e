"""Lasagne's special layers: nonlinearity, bias, scale, `standardize`, arbitrary expression,
`InverseLayer`, the spatial transformers (affine and thin-plate spline), PReLU and RReLU."""

import math
from numbers import Real

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.tensor.random.basic import uniform

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .base import Layer, MergeLayer, add_state_update, describe, nonlinearity_or_identity
from .noise import _layer_rng

__all__ = [
    "BiasLayer",
    "ExpressionLayer",
    "InverseLayer",
    "NonlinearityLayer",
    "ParametricRectifierLayer",
    "RandomizedRectifierLayer",
    "ScaleLayer",
    "TPSTransformerLayer",
    "TransformerLayer",
    "prelu",
    "rrelu",
    "standardize",
]


def _shared_axes(layer, shared_axes, name="shared_axes"):
    """'auto' -> batch and spatial axes (one value per channel); 'all', an int or a tuple."""
    rank = len(layer.input_shape)
    if shared_axes == "auto":
        return (0, *range(2, rank))
    if shared_axes == "all":
        return tuple(range(rank))
    axes = (shared_axes,) if is_int(shared_axes) else tuple(shared_axes)
    if not all(is_int(a) and -rank <= a < rank for a in axes):
        raise ConfigError(
            invalid(
                describe(layer), name, f"'auto', 'all' or axes of a {rank}-d input", shared_axes
            )
        )
    return tuple(sorted({a % rank for a in axes}))


def _param_shape(layer, axes):
    shape = tuple(size for axis, size in enumerate(layer.input_shape) if axis not in axes)
    if None in shape:
        raise ConfigError(
            invalid(
                describe(layer),
                "shared_axes",
                f"axes covering every unknown length of input shape {layer.input_shape} (the "
                "layer needs specified input sizes for all axes its parameter is not shared "
                "over)",
                axes,
            )
        )
    return shape


def _broadcast(param, axes, rank):
    pattern, i = [], 0
    for axis in range(rank):
        if axis in axes:
            pattern.append("x")
        else:
            pattern.append(i)
            i += 1
    return param.dimshuffle(*pattern)


class NonlinearityLayer(Layer):
    """Apply `nonlinearity` elementwise (None: identity)."""

    def __init__(self, incoming, nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearity_or_identity(describe(self), nonlinearity)

    def get_output_for(self, input, **kwargs):
        return self.nonlinearity(input)


class BiasLayer(Layer):
    """Add a learned bias, shared over `shared_axes` ('auto': one per channel)."""

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        self.b = (
            None
            if b is None
            else self.add_param(b, _param_shape(self, self.shared_axes), "b", regularizable=False)
        )

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        return input + _broadcast(self.b, self.shared_axes, input.ndim)


class ScaleLayer(Layer):
    """Multiply by learned scales, shared over `shared_axes` ('auto': one per channel)."""

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        self.scales = self.add_param(
            scales, _param_shape(self, self.shared_axes), "scales", regularizable=False
        )

    def get_output_for(self, input, **kwargs):
        return input * _broadcast(self.scales, self.shared_axes, input.ndim)


class ExpressionLayer(Layer):
    """Apply `function` to the input.

    Parameters
    ----------
    function : callable
        Takes and returns a PyTensor expression.
    output_shape : None, tuple, callable or 'auto'
        None: same as the input; a tuple; a callable of the input shape; 'auto' evaluates
        `function` on a zero input whose unknown lengths are 0, and reports output lengths of 0
        as None (Lasagne's rule).
    """

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        if not callable(function):
            raise ConfigError(invalid(describe(self), "function", "a callable", function))
        if not (
            output_shape is None
            or output_shape == "auto"
            or callable(output_shape)
            or isinstance(output_shape, tuple)
        ):
            raise ConfigError(
                invalid(
                    describe(self),
                    "output_shape",
                    "None, 'auto', a tuple or a callable",
                    output_shape,
                )
            )
        self.function, self._output_shape = function, output_shape

    def get_output_shape_for(self, input_shape):
        spec = self._output_shape
        if spec is None:
            return input_shape
        if spec == "auto":
            probe = pt.zeros(tuple(0 if s is None else s for s in input_shape))
            # the Python VM: no JIT or C compilation for a one-off probe
            out_shape = pytensor.function([], self.function(probe).shape, mode="FAST_COMPILE")()
            shape = tuple(int(s) or None for s in out_shape)
            return shape
        if callable(spec):
            return tuple(spec(input_shape))
        return spec

    def get_output_for(self, input, **kwargs):
        return self.function(input)


class ParametricRectifierLayer(Layer):
    """PReLU: ``max(x, 0) + alpha * min(x, 0)`` with learned `alpha` (He et al. 2015).

    `alpha` is shared over `shared_axes` ('auto': one slope per channel, as HighRes3DNet
    uses) and not regularized.
    """

    def __init__(self, incoming, alpha=init.Constant(0.25), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        shape = _param_shape(self, self.shared_axes)
        self.alpha = self.add_param(alpha, shape, "alpha", regularizable=False)

    def get_output_for(self, input, **kwargs):
        alpha = _broadcast(self.alpha, self.shared_axes, input.ndim)
        return pt.maximum(input, 0) + alpha * pt.minimum(input, 0)


def prelu(layer, **kwargs):
    """Replace `layer`'s nonlinearity by a `ParametricRectifierLayer` on top of it."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    return ParametricRectifierLayer(layer, **kwargs)


def standardize(layer, offset, scale, shared_axes="auto"):
    """Subtract a fixed `offset` and divide by a fixed `scale` (Lasagne's `standardize`).

    A `BiasLayer` holding ``-offset`` followed by a `ScaleLayer` holding ``1 / scale``; both
    parameters lose their ``trainable`` tag, so training leaves them alone.

    Parameters
    ----------
    layer : Layer or tuple
        The incoming layer or the expected input shape.
    offset, scale : array, number or PyTensor expression
        Statistics of the data (e.g. its mean and standard deviation), shaped as the input
        with the `shared_axes` left out.
    shared_axes : 'auto', int or tuple of int
        Axes sharing one offset and scale ('auto': all but the channel axis).

    Returns
    -------
    ScaleLayer
        The last layer added; its input is the `BiasLayer`.

    Notes
    -----
    ``y = (x - offset) / scale``; the output shape is the input shape.
    """
    layer = BiasLayer(layer, -offset, shared_axes)
    layer.params[layer.b].discard("trainable")
    # a symbolic scale stays an expression (its shared variables remain the parameters);
    # numbers and arrays become a shared variable holding their inverse
    inverse = (
        1 / scale
        if isinstance(scale, Variable)
        else (1 / np.asarray(scale, dtype="float64")).astype(pytensor.config.floatX)
    )
    layer = ScaleLayer(layer, inverse, shared_axes)
    layer.params[layer.scales].discard("trainable")
    return layer


class InverseLayer(MergeLayer):
    """Invert `layer`: the gradient of `layer`'s output with respect to its input, applied to
    `incoming` (Lasagne's `InverseLayer`).

    For a linear `DenseLayer` this multiplies by ``W.T``; for a convolution it is the transposed
    convolution with the same weights; for max-pooling, unpooling to the positions of the
    maxima. A bias or a nonlinearity of `layer` contributes its derivative.

    Parameters
    ----------
    incoming : Layer
        Shaped as `layer`'s output.
    layer : Layer
        The layer to invert; it must have been built on a layer (``layer.input_layer``).

    Notes
    -----
    The output shape is `layer`'s input shape.
    """

    def __init__(self, incoming, layer, **kwargs):
        if getattr(layer, "input_layer", None) is None:
            raise ConfigError(
                invalid(
                    "InverseLayer",
                    "layer",
                    "a layer built on another layer (it has an input_layer)",
                    layer,
                )
            )
        super().__init__([incoming, layer, layer.input_layer], **kwargs)

    def get_output_shape_for(self, input_shapes):
        return input_shapes[2]

    def get_output_for(self, inputs, **kwargs):
        cotangent, layer_out, layer_in = inputs
        return pytensor.grad(None, wrt=layer_in, known_grads={layer_out: cotangent})


_BORDER_MODES = ("nearest", "mirror", "wrap")


def _downsample_factor(layer, value):
    factors = (value, value) if isinstance(value, Real) else value
    if (
        not isinstance(factors, tuple | list)
        or len(factors) != 2
        or not all(isinstance(f, Real) and not isinstance(f, bool) and f > 0 for f in factors)
    ):
        raise ConfigError(
            invalid(describe(layer), "downsample_factor", "a positive number or two", value)
        )
    return tuple(factors)


def _check_image_input(layer, input_shape, border_mode):
    if len(input_shape) != 4:
        raise ShapeError(
            invalid(
                describe(layer),
                "input shape",
                "a 4-d shape (batch_size, num_input_channels, input_rows, input_columns)",
                input_shape,
            )
        )
    if border_mode not in _BORDER_MODES:
        raise ConfigError(
            invalid(
                describe(layer), "border_mode", " or ".join(map(repr, _BORDER_MODES)), border_mode
            )
        )


def _transformed_shape(input_shape, factors):
    """(batch, channels, int(rows / f_rows), int(columns / f_columns)); None passes."""
    return tuple(input_shape[:2]) + tuple(
        None if s is None else int(s / f) for s, f in zip(input_shape[2:], factors, strict=True)
    )


def _out_lengths(input, factors):
    """The output rows and columns as int64 scalars, ``int(length / factor)`` each."""
    return tuple(
        pt.cast(pt.cast(input.shape[2 + i], "float64") / factors[i], "int64") for i in range(2)
    )


def _linspace(n):
    """n points from -1 to 1 (numpy's linspace; a single point is -1), floatX."""
    n_f = pt.cast(n, pytensor.config.floatX)
    step = 2 / pt.maximum(n_f - 1, 1)
    return pt.arange(n, dtype=pytensor.config.floatX) * step - 1


def _target_grid(rows, columns):
    """(2, rows * columns): the x (column) and y (row) coordinates of every output pixel in
    [-1, 1], row-major."""
    x = pt.tile(_linspace(columns)[None, :], (rows, 1)).flatten()
    y = pt.tile(_linspace(rows)[:, None], (1, columns)).flatten()
    return pt.stack([x, y])


def _fold(index, length, border_mode):
    """Integer pixel indices outside [0, length) moved inside by the border rule."""
    if border_mode == "nearest":
        return pt.clip(index, 0, length - 1)
    if border_mode == "wrap":
        return index % length
    # mirror about the first and the last pixel (period 2 * (length - 1)); a length of 1: 0
    period = pt.maximum(2 * (length - 1), 1)
    folded = index % period
    return pt.minimum(folded, (period - folded) % period)


def _bilinear_sample(input, x, y, rows, columns, border_mode):
    """Sample `input` (n, c, h, w) bilinearly at `x`, `y` (each (n, rows * columns), in
    [-1, 1] coordinates: -1 the first pixel's centre, 1 the last's); returns
    (n, c, rows, columns)."""
    n, c, h, w = input.shape
    # pixel coordinates: [-1, 1] -> [0, length - 1]
    px = (x + 1) / 2 * pt.cast(w - 1, x.dtype)
    py = (y + 1) / 2 * pt.cast(h - 1, y.dtype)
    x0_f, y0_f = pt.floor(px), pt.floor(py)
    # weights of the far neighbour along each axis
    fx, fy = px - x0_f, py - y0_f
    x0, y0 = pt.cast(x0_f, "int64"), pt.cast(y0_f, "int64")
    xs = (_fold(x0, w, border_mode), _fold(x0 + 1, w, border_mode))
    ys = (_fold(y0, h, border_mode), _fold(y0 + 1, h, border_mode))
    # one row per (image, pixel) of the channels-last image: a single integer-vector lookup
    pixels = input.dimshuffle(0, 2, 3, 1).reshape((-1, c))
    base = (pt.arange(n, dtype="int64") * h * w)[:, None]
    out = 0
    for j, wy in ((0, 1 - fy), (1, fy)):
        for i, wx in ((0, 1 - fx), (1, fx)):
            index = (base + ys[j] * w + xs[i]).flatten()
            out = out + (wy * wx).flatten()[:, None] * pixels[index]
    return out.reshape((n, rows, columns, c)).dimshuffle(0, 3, 1, 2)


class TransformerLayer(MergeLayer):
    """Spatial transformer with an affine transform (Jaderberg et al. 2015).

    Each output pixel at target coordinates ``(x_t, y_t)`` (both in [-1, 1] across the output)
    samples the input bilinearly at ``(x_s, y_s) = A @ (x_t, y_t, 1)``, with the 2 x 3 matrix
    ``A`` given per example by the localization network as ``[t1 .. t6]`` (row-major).

    Parameters
    ----------
    incoming : Layer or tuple
        Images, shape (batch, channels, rows, columns).
    localization_network : Layer
        Output (batch, 6): the affine parameters; ``[1, 0, 0, 0, 1, 0]`` is the identity.
    downsample_factor : float or two floats
        Output lengths are the input lengths divided by these (below 1 upsamples).
    border_mode : 'nearest', 'mirror' or 'wrap'
        Where samples fall outside the image: repeat the edge pixels, reflect about them, or
        wrap around.

    Notes
    -----
    Output shape: ``(batch, channels, int(rows / f_rows), int(columns / f_columns))``.
    """

    def __init__(
        self, incoming, localization_network, downsample_factor=1, border_mode="nearest", **kwargs
    ):
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = _downsample_factor(self, downsample_factor)
        self.border_mode = border_mode
        input_shape, loc_shape = self.input_shapes
        if len(loc_shape) != 2 or loc_shape[-1] != 6:
            raise ShapeError(
                invalid(
                    describe(self),
                    "localization_network output shape",
                    "(batch_size, 6)",
                    loc_shape,
                )
            )
        _check_image_input(self, input_shape, border_mode)

    def get_output_shape_for(self, input_shapes):
        return _transformed_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs, **kwargs):
        input, theta = inputs
        rows, columns = _out_lengths(input, self.downsample_factor)
        grid = _target_grid(rows, columns)
        homogeneous = pt.concatenate([grid, pt.ones_like(grid[:1])])
        source = pt.dot(theta.reshape((-1, 2, 3)), homogeneous)  # (batch, 2, P)
        return _bilinear_sample(input, source[:, 0], source[:, 1], rows, columns, self.border_mode)


def _tps_kernel(r2):
    """U(r) = r^2 log(r^2) from the squared distance, 0 at r = 0 (Bookstein 1989)."""
    return r2 * np.log(np.where(r2 > 0, r2, 1.0))


def _tps_source_points(num_points):
    """(2, K): a square grid of control points over [-1, 1]^2, x varying fastest."""
    side = math.isqrt(num_points)
    x, y = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    return np.stack([x.ravel(), y.ravel()])


def _tps_system_inverse(source):
    """The inverse of Bookstein's (K + 3) x (K + 3) system ``[[0, P.T], [P, K]]`` with
    ``P = [1, x, y]`` per control point and ``K[i, j] = U(|s_i - s_j|)``."""
    k = source.shape[1]
    p = np.concatenate([np.ones((1, k)), source])  # (3, K)
    r2 = ((source[:, :, None] - source[:, None, :]) ** 2).sum(0)
    system = np.zeros((k + 3, k + 3))
    system[:3, 3:] = p
    system[3:, :3] = p.T
    system[3:, 3:] = _tps_kernel(r2)
    return np.linalg.inv(system)


def _tps_basis_numpy(grid, source):
    """(K + 3, P): rows 1, x, y and U(|p - s_k|) for every target point p of `grid` (2, P)."""
    r2 = ((grid[:, None, :] - source[:, :, None]) ** 2).sum(0)  # (K, P)
    return np.concatenate([np.ones((1, grid.shape[1])), grid, _tps_kernel(r2)])


def _tps_basis(grid, source):
    """The symbolic twin of `_tps_basis_numpy` (the grid's size known only at run time)."""
    r2 = ((grid[:, None, :] - source[:, :, None]) ** 2).sum(0)
    kernel = r2 * pt.log(pt.switch(r2 > 0, r2, 1))
    return pt.concatenate([pt.ones_like(grid[:1]), grid, kernel])


class TPSTransformerLayer(MergeLayer):
    """Spatial transformer with a thin-plate spline (Jaderberg et al. 2015; Bookstein 1989).

    `control_points` source points lie on a square grid over [-1, 1]^2; the localization
    network moves each by an offset. The spline through (source -> source + offset) maps every
    output pixel's target coordinates to the input position it samples bilinearly.

    Parameters
    ----------
    incoming : Layer or tuple
        Images, shape (batch, channels, rows, columns).
    localization_network : Layer
        Output (batch, 2 * control_points): the x offsets of all points, then the y offsets;
        all zeros is the identity.
    downsample_factor : float or two floats
        Output lengths are the input lengths divided by these.
    control_points : int
        Number of control points, a perfect square.
    precompute_grid : 'auto' or bool
        Compute the spline basis of the output grid once, in numpy (needs known rows and
        columns; 'auto': when they are known), or in the graph for every call.
    border_mode : 'nearest', 'mirror' or 'wrap'
        As in `TransformerLayer`.

    Notes
    -----
    Output shape: ``(batch, channels, int(rows / f_rows), int(columns / f_columns))``. Both
    values of `precompute_grid` compute the same spline.
    """

    def __init__(
        self,
        incoming,
        localization_network,
        downsample_factor=1,
        control_points=16,
        precompute_grid="auto",
        border_mode="nearest",
        **kwargs,
    ):
        super().__init__([incoming, localization_network], **kwargs)
        where = describe(self)
        self.downsample_factor = _downsample_factor(self, downsample_factor)
        self.border_mode = border_mode
        input_shape, loc_shape = self.input_shapes
        if not is_int(control_points) or control_points < 4:
            raise ConfigError(
                invalid(where, "control_points", "an int >= 4 (a square grid of at least 2 x 2)",
                        control_points)
            )  # fmt: skip
        if len(loc_shape) != 2 or loc_shape[-1] != 2 * control_points:
            raise ShapeError(
                invalid(
                    where,
                    "localization_network output shape",
                    f"(batch_size, 2 * control_points) = (batch_size, {2 * control_points})",
                    loc_shape,
                )
            )
        if math.isqrt(control_points) ** 2 != control_points:
            raise ConfigError(
                invalid(where, "control_points", "a perfect square (4, 9, 16, ...)", control_points)
            )
        _check_image_input(self, input_shape, border_mode)
        known = None not in input_shape[2:]
        if precompute_grid == "auto":
            precompute_grid = known
        elif not isinstance(precompute_grid, bool):
            raise ConfigError(
                invalid(where, "precompute_grid", "'auto', True or False", precompute_grid)
            )
        elif precompute_grid and not known:
            raise ShapeError(
                invalid(
                    where,
                    "precompute_grid",
                    f"False or 'auto' for input shape {input_shape} (the grid can be precomputed "
                    "only for known rows and columns)",
                    precompute_grid,
                )
            )
        self.control_points, self.precompute_grid = int(control_points), precompute_grid
        floatx = pytensor.config.floatX
        source = _tps_source_points(self.control_points)
        # only the columns that multiply the destination points: the rest multiply zeros
        self._solve = pt.constant(_tps_system_inverse(source)[:, 3:].astype(floatx))
        self._source = pt.constant(source.astype(floatx))
        self._basis = None
        if precompute_grid:
            rows, columns = _transformed_shape(input_shape, self.downsample_factor)[2:]
            x, y = np.meshgrid(np.linspace(-1, 1, columns), np.linspace(-1, 1, rows))
            grid = np.stack([x.ravel(), y.ravel()])
            self._basis = pt.constant(_tps_basis_numpy(grid, source).astype(floatx))
            self._out_lengths = (rows, columns)

    def get_output_shape_for(self, input_shapes):
        return _transformed_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs, **kwargs):
        input, offsets = inputs
        destination = self._source + offsets.reshape((-1, 2, self.control_points))
        coefficients = pt.dot(destination, self._solve.T)  # (batch, 2, K + 3)
        if self._basis is not None:
            rows, columns = self._out_lengths
            basis = self._basis
        else:
            rows, columns = _out_lengths(input, self.downsample_factor)
            basis = _tps_basis(_target_grid(rows, columns), self._source)
        source = pt.dot(coefficients, basis)  # (batch, 2, P)
        return _bilinear_sample(input, source[:, 0], source[:, 1], rows, columns, self.border_mode)


class RandomizedRectifierLayer(Layer):
    """Randomized leaky rectifier (RReLU; Xu et al. 2015): ``max(x, 0) + a * min(x, 0)``.

    In training the slope ``a`` is drawn uniformly from [`lower`, `upper`) for every call,
    one per position along the axes not in `shared_axes`; deterministic outputs use the mean
    ``(lower + upper) / 2``.

    Parameters
    ----------
    lower, upper : float or scalar expression
        Bounds of the slopes, ``lower <= upper``.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes sharing one slope ('auto': all but the channel axis).

    Notes
    -----
    The output shape is the input shape. The random generator is a shared variable seeded
    from `dilnet.random.get_rng()`; it advances like `DropoutLayer`'s.
    """

    def __init__(self, incoming, lower=0.3, upper=0.8, shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        numbers = not isinstance(lower, Variable) and not isinstance(upper, Variable)
        if numbers and lower > upper:
            raise ConfigError(invalid(describe(self), "upper", f"at least lower={lower!r}", upper))
        self.lower, self.upper = lower, upper
        self.shared_axes = _shared_axes(self, shared_axes)
        self._rng = _layer_rng(self)

    def get_output_for(self, input, deterministic=False, **kwargs):
        numbers = not isinstance(self.lower, Variable) and not isinstance(self.upper, Variable)
        if deterministic or (numbers and self.lower == self.upper):
            slope = pt.cast((self.lower + self.upper) / 2, input.dtype)
            return pt.maximum(input, 0) + slope * pt.minimum(input, 0)
        size = tuple(1 if a in self.shared_axes else input.shape[a] for a in range(input.ndim))
        next_rng, slope = uniform(
            self.lower, self.upper, size=size, rng=self._rng, return_next_rng=True
        )
        slope = pt.cast(slope, input.dtype)
        if self.shared_axes:
            slope = pt.specify_broadcastable(slope, *self.shared_axes)
        out = pt.maximum(input, 0) + slope * pt.minimum(input, 0)
        return add_state_update(out, self._rng, next_rng)


def rrelu(layer, **kwargs):
    """Replace `layer`'s nonlinearity by a `RandomizedRectifierLayer` on top of it."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    return RandomizedRectifierLayer(layer, **kwargs)

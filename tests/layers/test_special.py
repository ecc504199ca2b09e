"""The special layers ported from Lasagne (standardize, InverseLayer, the spatial transformers,
RReLU) against plain-loop numpy oracles written here."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from common import FAST, evaluate, rng

from dilnet import layers as L
from dilnet import nonlinearities
from dilnet.errors import ConfigError, ShapeError

# ---------------------------------------------------------------- oracles


def _grid_1d(n):
    """n evenly spaced points from -1 to 1 (one point: -1)."""
    return [-1.0 + 2.0 * i / (n - 1) if n > 1 else -1.0 for i in range(n)]


def _fold_index(i, n, border_mode):
    """Pixel index `i` moved into [0, n) by the border rule, by walking (no modulo)."""
    if border_mode == "nearest":
        return min(max(i, 0), n - 1)
    if border_mode == "wrap":
        while i < 0:
            i += n
        while i >= n:
            i -= n
        return i
    if n == 1:
        return 0
    while not 0 <= i <= n - 1:  # mirror about the first and the last pixel
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _sample_reference(image, xs, ys, border_mode):
    """Bilinear sample of `image` (c, h, w) at [-1, 1] coordinates xs, ys (lists of lists)."""
    c, h, w = image.shape
    rows, cols = len(ys), len(ys[0])
    out = np.zeros((c, rows, cols))
    for r in range(rows):
        for q in range(cols):
            px = (xs[r][q] + 1) / 2 * (w - 1)
            py = (ys[r][q] + 1) / 2 * (h - 1)
            x0, y0 = math.floor(px), math.floor(py)
            for dy in (0, 1):
                for dx in (0, 1):
                    weight = (px - x0 if dx else 1 - (px - x0)) * (py - y0 if dy else 1 - (py - y0))
                    iy = _fold_index(y0 + dy, h, border_mode)
                    ix = _fold_index(x0 + dx, w, border_mode)
                    out[:, r, q] += weight * image[:, iy, ix]
    return out


def _affine_reference(images, thetas, out_rows, out_cols, border_mode):
    out = []
    for image, theta in zip(images, thetas, strict=True):
        a = np.asarray(theta).reshape(2, 3)
        xs = [[0.0] * out_cols for _ in range(out_rows)]
        ys = [[0.0] * out_cols for _ in range(out_rows)]
        for r, yt in enumerate(_grid_1d(out_rows)):
            for q, xt in enumerate(_grid_1d(out_cols)):
                xs[r][q] = a[0, 0] * xt + a[0, 1] * yt + a[0, 2]
                ys[r][q] = a[1, 0] * xt + a[1, 1] * yt + a[1, 2]
        out.append(_sample_reference(image, xs, ys, border_mode))
    return np.stack(out)


def _tps_u(dx, dy):
    r2 = dx * dx + dy * dy
    return 0.0 if r2 == 0 else r2 * math.log(r2)


def _tps_reference(images, offsets, num_points, out_rows, out_cols, border_mode="nearest"):
    """Thin-plate spline warp: solve the interpolation system per example and coordinate
    (kernel block first, affine last: ordered differently from the layer), then evaluate the
    spline at every output pixel and sample there."""
    side = math.isqrt(num_points)
    points = [(x, y) for y in _grid_1d(side) for x in _grid_1d(side)]
    k = len(points)
    system = np.zeros((k + 3, k + 3))
    for i, (xi, yi) in enumerate(points):
        for j, (xj, yj) in enumerate(points):
            system[i, j] = _tps_u(xi - xj, yi - yj)
        system[i, k : k + 3] = (1, xi, yi)
        system[k : k + 3, i] = (1, xi, yi)
    out = []
    for image, offset in zip(images, offsets, strict=True):
        coefficients = []
        for axis in (0, 1):
            target = [points[i][axis] + offset[axis * k + i] for i in range(k)]
            coefficients.append(np.linalg.solve(system, np.concatenate([target, np.zeros(3)])))
        xs = [[0.0] * out_cols for _ in range(out_rows)]
        ys = [[0.0] * out_cols for _ in range(out_rows)]
        for r, yt in enumerate(_grid_1d(out_rows)):
            for q, xt in enumerate(_grid_1d(out_cols)):
                values = []
                for cf in coefficients:
                    v = cf[k] + cf[k + 1] * xt + cf[k + 2] * yt
                    v += sum(cf[i] * _tps_u(xt - px, yt - py) for i, (px, py) in enumerate(points))
                    values.append(v)
                xs[r][q], ys[r][q] = values
        out.append(_sample_reference(image, xs, ys, border_mode))
    return np.stack(out)


def _transform(layer, images, params):
    out = layer.get_output_for([pt.constant(images), pt.constant(params)])
    return pytensor.function([], out, mode=FAST)()


# ---------------------------------------------------------------- standardize


def test_standardize_subtracts_offset_divides_by_scale_and_freezes_both():
    r = rng(0)
    x = r.standard_normal((6, 3, 4, 5))
    offset, scale = r.standard_normal((3, 5)), r.uniform(0.5, 2.0, (3, 5))
    inp = L.InputLayer((None, 3, None, 5))
    top = L.standardize(inp, offset, scale, shared_axes=(0, 2))
    assert isinstance(top, L.ScaleLayer) and isinstance(top.input_layer, L.BiasLayer)
    want = np.empty_like(x)
    for n, c, i, j in np.ndindex(*x.shape):
        want[n, c, i, j] = (x[n, c, i, j] - offset[c, j]) / scale[c, j]
    np.testing.assert_allclose(evaluate(top, x), want, rtol=1e-12)
    assert len(L.get_all_params(top)) == 2
    assert L.get_all_params(top, trainable=True) == []


def test_standardize_keeps_a_symbolic_scale_as_the_parameter():
    scale = pytensor.shared(np.array([2.0, 4.0]), name="scale")
    top = L.standardize(L.InputLayer((None, 2)), np.array([1.0, -1.0]), scale, shared_axes=0)
    assert scale in L.get_all_params(top)
    x = np.array([[3.0, 3.0]])
    np.testing.assert_allclose(evaluate(top, x), [[1.0, 1.0]])
    scale.set_value(np.array([1.0, 1.0]))
    np.testing.assert_allclose(evaluate(top, x), [[2.0, 4.0]])


# ---------------------------------------------------------------- InverseLayer


def test_inverse_of_dense_layer_applies_its_input_gradient():
    r = rng(1)
    inp = L.InputLayer((4, 5))
    dense = L.DenseLayer(inp, 3, b=r.standard_normal(3), nonlinearity=nonlinearities.tanh)
    inverse = L.InverseLayer(dense, dense)
    assert inverse.output_shape == (4, 5)
    x = r.standard_normal((4, 5))
    W, b = dense.W.get_value(), dense.b.get_value()
    y = np.tanh(x @ W + b)
    want = np.zeros((4, 5))  # d tanh(xW + b) / dx applied to y, element by element
    for n in range(4):
        for i in range(5):
            for u in range(3):
                want[n, i] += y[n, u] * (1 - y[n, u] ** 2) * W[i, u]
    np.testing.assert_allclose(evaluate(inverse, x), want, rtol=1e-10)


def test_inverse_of_convolution_is_its_adjoint():
    # <A x, v> == <x, A^T v> for the linear convolution A and any v
    r = rng(14)
    inp = L.InputLayer((2, 3, 6, 5))
    conv = L.Conv2DLayer(inp, 4, 3, stride=(2, 1), pad="same", b=None, nonlinearity=None)
    top = L.InputLayer(conv.output_shape)
    inverse = L.InverseLayer(top, conv)
    assert inverse.output_shape == (2, 3, 6, 5)
    x, v = r.standard_normal((2, 3, 6, 5)), r.standard_normal(conv.output_shape)
    adjoint = pytensor.function([inp.input_var, top.input_var], L.get_output(inverse), mode=FAST)(
        x, v
    )
    np.testing.assert_allclose(np.vdot(evaluate(conv, x), v), np.vdot(x, adjoint), rtol=1e-10)


def test_inverse_of_max_pool_unpools_to_the_maxima():
    x = rng(2).permutation(16).astype(float).reshape(1, 1, 16)
    inp = L.InputLayer((1, 1, 16))
    pool = L.MaxPool1DLayer(inp, 4)
    inverse = L.InverseLayer(pool, pool)
    want = np.zeros_like(x)
    for k in range(4):
        window = x[0, 0, 4 * k : 4 * k + 4]
        want[0, 0, 4 * k + int(np.argmax(window))] = window.max()
    np.testing.assert_allclose(evaluate(inverse, x), want)


def test_inverse_layer_needs_a_layer_built_on_a_layer():
    with pytest.raises(ConfigError, match="InverseLayer: invalid value for `layer`"):
        L.InverseLayer(L.InputLayer((2, 3)), L.DenseLayer((2, 3), 4))


# ---------------------------------------------------------------- TransformerLayer


@pytest.mark.parametrize("border_mode", ["nearest", "mirror", "wrap"])
def test_affine_transformer_matches_bilinear_oracle(border_mode):
    r = rng(3)
    images = r.standard_normal((2, 3, 7, 9))
    # zoomed out, rotated and shifted: many samples fall outside the image
    thetas = np.array([[1.7, 0.4, 0.3, -0.5, 1.2, -0.2], [0.6, -0.9, 0.8, 1.1, 0.7, 0.1]])
    layer = L.TransformerLayer(
        L.InputLayer((None, 3, 7, 9)), L.InputLayer((None, 6)), border_mode=border_mode
    )
    want = _affine_reference(images, thetas, 7, 9, border_mode)
    np.testing.assert_allclose(_transform(layer, images, thetas), want, rtol=1e-10, atol=1e-12)


def test_affine_transformer_identity_and_downsampled_shape():
    images = rng(4).standard_normal((2, 1, 6, 5))
    identity = np.tile([1.0, 0, 0, 0, 1, 0], (2, 1))
    layer = L.TransformerLayer(L.InputLayer((None, 1, 6, 5)), L.InputLayer((None, 6)))
    np.testing.assert_allclose(_transform(layer, images, identity), images, atol=1e-12)
    inp, loc = L.InputLayer((None, 1, None, 5)), L.InputLayer((None, 6))
    small = L.TransformerLayer(inp, loc, downsample_factor=(2, 0.7))
    assert small.output_shape == (None, 1, None, int(5 / 0.7))
    out = evaluate(small, images, identity)
    assert out.shape == (2, 1, 3, 7)
    np.testing.assert_allclose(out, _affine_reference(images, identity, 3, 7, "nearest"))


def test_transformer_gradient_reaches_theta():
    inp, loc = L.InputLayer((1, 1, 5, 5)), L.InputLayer((1, 6))
    layer = L.TransformerLayer(inp, loc)
    images = rng(5).standard_normal((1, 1, 5, 5))
    # no sample on a pixel centre, where bilinear interpolation has a kink
    theta = np.array([[0.93, 0.11, 0.047, -0.13, 1.07, 0.023]])
    cost = L.get_output(layer).sum()
    grad = pytensor.function(
        [inp.input_var, loc.input_var], pytensor.grad(cost, loc.input_var), mode=FAST
    )(images, theta)
    eps, numeric = 1e-6, np.zeros(6)
    for i in range(6):
        up, down = theta.copy(), theta.copy()
        up[0, i] += eps
        down[0, i] -= eps
        numeric[i] = (
            _affine_reference(images, up, 5, 5, "nearest").sum()
            - _affine_reference(images, down, 5, 5, "nearest").sum()
        ) / (2 * eps)
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-7)


def test_transformer_errors():
    with pytest.raises(ShapeError, match=r"localization_network output shape`. Expected \(batch"):
        L.TransformerLayer(L.InputLayer((None, 3, 8, 8)), L.InputLayer((None, 5)))
    with pytest.raises(ShapeError, match="Expected a 4-d shape"):
        L.TransformerLayer(L.InputLayer((None, 8, 8)), L.InputLayer((None, 6)))
    with pytest.raises(ConfigError, match=r"`border_mode`\. Expected 'nearest' or 'mirror' or"):
        L.TransformerLayer(L.InputLayer((1, 3, 8, 8)), L.InputLayer((1, 6)), border_mode="x")
    with pytest.raises(ConfigError, match=r"`downsample_factor`"):
        L.TransformerLayer(L.InputLayer((1, 3, 8, 8)), L.InputLayer((1, 6)), downsample_factor=0)


# ---------------------------------------------------------------- TPSTransformerLayer


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("num_points", [4, 9])
def test_thin_plate_spline_matches_oracle(precompute, num_points):
    r = rng(6 + num_points)
    images = r.standard_normal((2, 2, 6, 7))
    offsets = r.uniform(-0.3, 0.3, (2, 2 * num_points))
    shape = (None, 2, 6, 7) if precompute else (None, 2, None, 7)
    layer = L.TPSTransformerLayer(
        L.InputLayer(shape), L.InputLayer((None, 2 * num_points)), control_points=num_points
    )
    assert layer.precompute_grid is precompute
    want = _tps_reference(images, offsets, num_points, 6, 7)
    np.testing.assert_allclose(_transform(layer, images, offsets), want, rtol=1e-7, atol=1e-9)


def test_thin_plate_spline_zero_offsets_are_the_identity_and_shifts_translate():
    images = rng(7).standard_normal((1, 1, 5, 6))
    layer = L.TPSTransformerLayer(L.InputLayer((1, 1, 5, 6)), L.InputLayer((1, 32)))
    np.testing.assert_allclose(_transform(layer, images, np.zeros((1, 32))), images, atol=1e-9)
    # every point moved by the same offset: a pure translation, i.e. the affine oracle
    shift = np.concatenate([np.full(16, 0.4), np.full(16, -0.2)])[None]
    want = _affine_reference(images, [[1, 0, 0.4, 0, 1, -0.2]], 5, 6, "nearest")
    np.testing.assert_allclose(_transform(layer, images, shift), want, atol=1e-9)


def test_thin_plate_spline_downsampled_shape():
    layer = L.TPSTransformerLayer(
        L.InputLayer((None, 2, 10, None)), L.InputLayer((None, 8)), 2.5, control_points=4
    )
    assert layer.output_shape == (None, 2, 4, None)
    images = rng(8).standard_normal((1, 2, 10, 6))
    offsets = rng(9).uniform(-0.2, 0.2, (1, 8))
    out = _transform(layer, images, offsets)
    np.testing.assert_allclose(out, _tps_reference(images, offsets[0][None], 4, 4, 2), atol=1e-9)


def test_thin_plate_spline_errors():
    inp, loc = L.InputLayer((None, 3, 8, 8)), L.InputLayer((None, 32))
    with pytest.raises(ShapeError, match=r"Expected \(batch_size, 2 \* control_points\)"):
        L.TPSTransformerLayer(inp, L.InputLayer((None, 30)))
    with pytest.raises(ConfigError, match="Expected a perfect square"):
        L.TPSTransformerLayer(inp, L.InputLayer((None, 34)), control_points=17)
    with pytest.raises(ShapeError, match="Expected a 4-d shape"):
        L.TPSTransformerLayer(L.InputLayer((None, 8, 8)), loc)
    with pytest.raises(ShapeError, match="only for known rows and columns"):
        L.TPSTransformerLayer(L.InputLayer((None, 3, None, 8)), loc, precompute_grid=True)
    with pytest.raises(ConfigError, match=r"`precompute_grid`"):
        L.TPSTransformerLayer(inp, loc, precompute_grid="yes")


# ---------------------------------------------------------------- RReLU


def test_rrelu_deterministic_uses_the_mean_slope():
    x = rng(10).standard_normal((3, 4, 5))
    layer = L.RandomizedRectifierLayer(L.InputLayer((None, 4, 5)), lower=0.2, upper=0.6)
    want = np.where(x > 0, x, 0.4 * x)
    np.testing.assert_allclose(evaluate(layer, x, deterministic=True), want, rtol=1e-12)


@pytest.mark.parametrize(
    ("shared_axes", "varying"),
    [("auto", {1}), ("all", set()), (0, {1, 2, 3}), ((0, 3), {1, 2})],
)
def test_rrelu_draws_slopes_in_range_shared_over_axes(shared_axes, varying):
    inp = L.InputLayer((None, 3, 4, 5))
    layer = L.RandomizedRectifierLayer(inp, shared_axes=shared_axes)
    out = L.get_output(layer)
    f = pytensor.function([inp.input_var], out, updates=L.collect_state_updates(out), mode=FAST)
    x = -np.ones((2, 3, 4, 5))
    slopes = -f(x)
    assert slopes.min() >= 0.3 and slopes.max() < 0.8
    for axis in range(4):
        constant = np.allclose(slopes, slopes.take([0], axis=axis))
        assert constant == (axis not in varying), axis
    assert (f(x) != -slopes).any()  # the generator advanced
    np.testing.assert_array_equal(f(np.abs(x) * 2), 2.0)  # positive values pass unchanged
    # without its update the layer repeats its slopes: the update is what advances it
    g = pytensor.function([inp.input_var], out, mode=FAST)
    np.testing.assert_array_equal(g(x), g(x))


def test_rrelu_macro_and_bounds():
    dense = L.DenseLayer(L.InputLayer((2, 3)), 4)
    top = L.rrelu(dense, lower=0.1, upper=0.1)
    assert dense.nonlinearity is nonlinearities.identity
    assert isinstance(top, L.RandomizedRectifierLayer)
    x = rng(11).standard_normal((2, 3))
    z = x @ dense.W.get_value()
    np.testing.assert_allclose(evaluate(top, x), np.where(z > 0, z, 0.1 * z), rtol=1e-12)
    with pytest.raises(ConfigError, match=r"`upper`\. Expected at least lower=0\.9"):
        L.RandomizedRectifierLayer((None, 3), lower=0.9, upper=0.1)


def test_standardize_keeps_floatx():
    """Numbers and arrays become a scale of dtype floatX: a float32 network stays float32."""
    import pytensor

    from dilnet import layers as L

    previous = pytensor.config.floatX
    pytensor.config.floatX = "float32"
    try:
        layer = L.standardize(L.InputLayer((None, 3)), np.zeros(3, "float32"),
                              np.full(3, 2.0, "float32"))  # fmt: skip
        x = pytensor.tensor.matrix("x", dtype="float32")
        out = L.get_output(layer, x)
        assert out.dtype == "float32"
        value = out.eval({x: np.ones((1, 3), "float32")})
        np.testing.assert_array_equal(value, np.full((1, 3), 0.5, "float32"))
    finally:
        pytensor.config.floatX = previous

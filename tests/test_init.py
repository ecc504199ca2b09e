"""dilnet.init and dilnet.random against hand-computed fans, numpy oracles and sample statistics."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import dilnet.init as init
from dilnet import dilated_conv
from dilnet.errors import ConfigError
from dilnet.random import draw_seed, get_rng, set_rng

FAST = "FAST_COMPILE"  # Python VM: no C or Numba compilation for these tiny graphs


@pytest.fixture(autouse=True)
def seeded_rng():
    """Every test draws from a seeded generator; the package generator is restored afterwards."""
    previous = get_rng()
    set_rng(np.random.default_rng(0))
    yield
    set_rng(previous)


# --- dilnet.random --------------------------------------------------------------------------


def test_set_rng_get_rng_round_trip_and_reproducibility():
    gen = np.random.default_rng(7)
    set_rng(gen)
    assert get_rng() is gen
    first = init.GlorotUniform()((5, 6, 3))
    set_rng(np.random.default_rng(7))
    np.testing.assert_array_equal(init.GlorotUniform()((5, 6, 3)), first)


def test_default_generator_reseeds_like_lasagnes():
    """Lasagne code seeds the package generator with ``get_rng().seed(n)``; in a fresh process
    (no fixture) that works and the draws are numpy's RandomState(n)'s."""
    import subprocess
    import sys

    code = (
        "import numpy as np, dilnet.init as init; from dilnet.random import get_rng\n"
        "get_rng().seed(1234); a = init.Uniform(1.0)((3, 4))\n"
        "b = np.random.RandomState(1234).uniform(-1.0, 1.0, (3, 4))\n"
        "print(np.array_equal(a, b.astype(a.dtype)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_set_rng_accepts_random_state_and_normal_matches_numpy():
    set_rng(np.random.RandomState(3))
    got = init.Normal(std=0.5, mean=2.0)((4, 5))
    expected = np.random.RandomState(3).normal(2.0, 0.5, size=(4, 5))
    np.testing.assert_allclose(got, expected.astype(pytensor.config.floatX))


@pytest.mark.parametrize("bad", [42, "seed", None, np.random.default_rng(0).bit_generator])
def test_set_rng_rejects_non_generators(bad):
    with pytest.raises(
        ConfigError, match=r"set_rng: invalid value for `new_rng`\. Expected a numpy"
    ):
        set_rng(bad)


@pytest.mark.parametrize("make", [np.random.default_rng, np.random.RandomState])
def test_draw_seed_in_range_and_deterministic(make):
    seeds = [draw_seed(make(11)) for _ in range(2)]
    assert seeds[0] == seeds[1]
    assert isinstance(seeds[0], int)
    assert 1 <= seeds[0] < 2147462579
    set_rng(make(11))
    assert draw_seed() == seeds[0]  # defaults to the package generator


# --- Constant, Normal, Uniform --------------------------------------------------------------


def test_base_initializer_call_delegates_and_sample_is_abstract():
    class Twos(init.Initializer):
        def sample(self, shape):
            return np.full(shape, 2.0)

    np.testing.assert_array_equal(Twos()((2, 3)), np.full((2, 3), 2.0))
    with pytest.raises(NotImplementedError, match="Initializer does not implement sample"):
        init.Initializer()((2, 3))


def test_constant_values_dtype_and_int_shape():
    w = init.Constant(0.25)((3, 2, 1))
    assert w.dtype == pytensor.config.floatX
    np.testing.assert_array_equal(w, np.full((3, 2, 1), 0.25))
    np.testing.assert_array_equal(init.Constant()(4), np.zeros(4))
    assert init.Constant(1.5)(()).shape == ()


def test_normal_statistics():
    w = init.Normal(std=0.3, mean=-1.0)((400, 250))
    assert w.dtype == pytensor.config.floatX
    assert abs(w.mean() + 1.0) < 0.01
    assert w.std() == pytest.approx(0.3, rel=0.02)


def test_defaults_are_lasagnes():
    assert init.Normal().std == 0.01 and init.Normal().mean == 0.0
    assert init.Uniform().range == (-0.01, 0.01)
    assert init.Sparse().sparsity == 0.1 and init.Sparse().std == 0.01
    assert init.Orthogonal().gain == 1.0
    g = init.GlorotUniform()
    assert (g.gain, g.c01b, g.initializer) == (1.0, False, init.Uniform)
    h = init.HeNormal()
    assert (h.gain, h.c01b, h.initializer) == (1.0, False, init.Normal)
    ident = init.Identity()
    assert (ident.variant, ident.noise_std, ident.C) == ("basic", 0.0, None)


@pytest.mark.parametrize(
    ("kwargs", "low", "high"),
    [
        ({}, -0.01, 0.01),
        ({"range": 0.5}, -0.5, 0.5),
        ({"range": (1.0, 3.0)}, 1.0, 3.0),
        ({"std": 2.0, "mean": 1.0}, 1.0 - 2.0 * math.sqrt(3), 1.0 + 2.0 * math.sqrt(3)),
        ({"range": 5.0, "mean": 7.0}, -5.0, 5.0),  # as in Lasagne, mean only applies with std
    ],
)
def test_uniform_bounds(kwargs, low, high):
    u = init.Uniform(**kwargs)
    assert u.range == pytest.approx((low, high))
    w = u((300, 200))
    assert low <= w.min() and w.max() <= high
    width = high - low
    assert w.min() < low + 0.001 * width and w.max() > high - 0.001 * width
    assert w.std() == pytest.approx(width / math.sqrt(12), rel=0.02)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: init.Normal(std=-1),
            r"Normal: invalid value for `std`\. Expected a real number >= 0; received std=-1",
        ),
        (
            lambda: init.Uniform(range=(2, 1)),
            r"Uniform: invalid value for `range`\. Expected low <= high",
        ),
        (
            lambda: init.Uniform(range="wide"),
            r"Uniform: invalid value for `range`\. Expected a number or a pair",
        ),
        (lambda: init.Uniform(range=(1, 2, 3)), r"Uniform: invalid value for `range`"),
        (
            lambda: init.Sparse(sparsity=1.5),
            r"Sparse: invalid value for `sparsity`\. Expected a fraction in \[0, 1\]",
        ),
        (
            lambda: init.GlorotUniform(gain="tanh"),
            r"GlorotUniform: invalid value for `gain`\. Expected a real number or 'relu'; received gain='tanh'",
        ),
        (lambda: init.Orthogonal(gain=None), r"Orthogonal: invalid value for `gain`"),
        (lambda: init.Glorot(3.0), r"Glorot: invalid value for `initializer`"),
        (
            lambda: init.Normal()((3, 0)),
            r"Normal: invalid value for `shape`\. Expected a positive int or a tuple of positive ints; received shape=\(3, 0\)",
        ),
        (lambda: init.Constant()((2.5, 3)), r"Constant: invalid value for `shape`"),
    ],
)
def test_bad_arguments_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


# --- Glorot and He: fans computed by hand ---------------------------------------------------

# shape, c01b, fan_in, fan_out (by hand: dense (in, out); conv (out, in, *k); c01b (in, r, c, out))
FANS = [
    ((300, 200), False, 300, 200),
    ((64, 32, 3, 3, 3), False, 32 * 27, 64 * 27),
    ((48, 24, 5, 5), False, 24 * 25, 48 * 25),
    ((32, 3, 3, 64), True, 32 * 9, 64 * 9),
]


@pytest.mark.parametrize(("shape", "c01b", "fan_in", "fan_out"), FANS)
@pytest.mark.parametrize("gain", [1.0, "relu", 0.5])
def test_glorot_uniform_bounds_and_std(shape, c01b, fan_in, fan_out, gain):
    g = math.sqrt(2) if gain == "relu" else gain
    bound = g * math.sqrt(6.0 / (fan_in + fan_out))
    w = init.GlorotUniform(gain=gain, c01b=c01b)(shape)
    assert w.shape == shape and w.dtype == pytensor.config.floatX
    assert np.abs(w).max() <= bound * (1 + 1e-7)
    assert np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize(("shape", "c01b", "fan_in", "fan_out"), FANS)
def test_glorot_normal_std(shape, c01b, fan_in, fan_out):
    w = init.GlorotNormal(gain="relu", c01b=c01b)(shape)
    assert abs(w.mean()) < 0.02 * w.std()
    assert w.std() == pytest.approx(math.sqrt(2) * math.sqrt(2.0 / (fan_in + fan_out)), rel=0.02)


@pytest.mark.parametrize(("shape", "c01b", "fan_in", "fan_out"), FANS)
def test_he_normal_and_uniform_use_fan_in(shape, c01b, fan_in, fan_out):
    std = math.sqrt(2.0 / fan_in)  # gain='relu'
    w = init.HeNormal(gain="relu", c01b=c01b)(shape)
    assert w.std() == pytest.approx(std, rel=0.02)
    w = init.HeUniform(gain="relu", c01b=c01b)(shape)
    bound = std * math.sqrt(3)
    assert np.abs(w).max() <= bound * (1 + 1e-7)
    assert np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(std, rel=0.02)


def test_glorot_and_he_with_an_explicit_initializer_equal_the_shortcuts():
    for generic, shortcut in [
        (init.Glorot(init.Normal, gain=2.0), init.GlorotNormal(gain=2.0)),
        (init.He(init.Uniform, gain="relu"), init.HeUniform(gain="relu")),
    ]:
        set_rng(np.random.default_rng(1))
        a = generic((8, 4, 3))
        set_rng(np.random.default_rng(1))
        np.testing.assert_array_equal(a, shortcut((8, 4, 3)))


@pytest.mark.parametrize(
    "cls", [init.GlorotUniform, init.GlorotNormal, init.HeNormal, init.HeUniform]
)
def test_glorot_he_shape_errors_name_the_initializer(cls):
    name = cls.__name__
    with pytest.raises(
        ConfigError,
        match=rf"{name}: invalid value for `shape`\. Expected at least 2 dimensions .*received shape=\(5,\)",
    ):
        cls()((5,))
    with pytest.raises(
        ConfigError,
        match=rf"{name}: invalid value for `shape`\. Expected exactly 4 dimensions; received shape=\(4, 3, 3\)",
    ):
        cls(c01b=True)((4, 3, 3))


# --- Sparse -----------------------------------------------------------------------------------


def test_sparse_exact_nonzeros_per_column_and_std():
    n_in, n_out = 500, 120
    w = init.Sparse(sparsity=0.2, std=0.5)((n_in, n_out))
    assert w.dtype == pytensor.config.floatX
    np.testing.assert_array_equal(np.count_nonzero(w, axis=0), np.full(n_out, 100))
    assert w[w != 0].std() == pytest.approx(0.5, rel=0.02)
    # rows are chosen at random: every input row is used by some column
    assert np.count_nonzero(w, axis=1).min() > 0


def test_sparse_rounds_down_like_lasagne_and_needs_2d():
    w = init.Sparse(sparsity=0.25)((10, 7))  # int(2.5) = 2 per column
    np.testing.assert_array_equal(np.count_nonzero(w, axis=0), np.full(7, 2))
    with pytest.raises(
        ConfigError,
        match=r"Sparse: invalid value for `shape`\. Expected exactly 2 dimensions; received shape=\(4, 3, 3\)",
    ):
        init.Sparse()((4, 3, 3))


# --- Orthogonal -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "gain"),
    [((6, 6), 1.0), ((4, 3, 3), "relu"), ((8, 2, 3, 3, 3), 0.5), ((20, 5), 1.0), ((27, 2, 3), 2.0)],
)
def test_orthogonal_rows_or_columns_orthonormal(shape, gain):
    g = math.sqrt(2) if gain == "relu" else gain
    w = init.Orthogonal(gain=gain)(shape)
    assert w.shape == shape and w.dtype == pytensor.config.floatX
    q = w.reshape(shape[0], -1).astype(np.float64) / g
    rows, cols = q.shape
    gram = q @ q.T if rows <= cols else q.T @ q  # the smaller Gram matrix is the identity
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-6)


def test_orthogonal_needs_2d():
    with pytest.raises(
        ConfigError, match=r"Orthogonal: invalid value for `shape`\. Expected at least 2 dimensions"
    ):
        init.Orthogonal()(7)


# --- Identity (Yu & Koltun 2016) --------------------------------------------------------------


def _centre(w):
    return w[(slice(None), slice(None), *(k // 2 for k in w.shape[2:]))]


def test_identity_basic_weights_by_loops():
    shape = (3, 3, 3, 5)
    w = init.Identity()(shape)
    for b in range(3):
        for a in range(3):
            for i in range(3):
                for j in range(5):
                    expected = 1.0 if (a == b and (i, j) == (1, 2)) else 0.0
                    assert w[b, a, i, j] == expected


@pytest.mark.parametrize(
    ("spatial", "kernel", "dilation"),
    [
        ((9,), (3,), 1),
        ((6, 7), (3, 5), (2, 1)),
        ((5, 4, 6), (3, 3, 3), 2),
        ((5, 5, 5), (1, 1, 1), 1),
    ],
)
def test_identity_basic_conv_passes_input_through(spatial, kernel, dilation):
    floatX = pytensor.config.floatX
    x_val = np.random.default_rng(2).standard_normal((2, 4, *spatial)).astype(floatX)
    W_val = init.Identity()((4, 4, *kernel))
    x = pt.tensor("x", dtype=floatX, shape=(None,) * x_val.ndim)
    W = pt.tensor("W", dtype=floatX, shape=(None,) * W_val.ndim)
    f = pytensor.function([x, W], dilated_conv(x, W, dilation=dilation, pad="same"), mode=FAST)
    np.testing.assert_array_equal(f(x_val, W_val), x_val)


def test_identity_large_expanding_hand_computed():
    # c_in=4, c_out=8, C=4: groups floor(a*4/4) = a and floor(b*4/8) = b // 2; value C/c_out = 1/2
    expected = np.array(
        [
            [0.5, 0, 0, 0],
            [0.5, 0, 0, 0],
            [0, 0.5, 0, 0],
            [0, 0.5, 0, 0],
            [0, 0, 0.5, 0],
            [0, 0, 0.5, 0],
            [0, 0, 0, 0.5],
            [0, 0, 0, 0.5],
        ]
    )
    for C in (4, None):  # None means min(c_in, c_out) = 4
        w = init.Identity("large", C=C)((8, 4, 3, 3))
        np.testing.assert_array_equal(_centre(w), expected)
        off_centre = w.copy()
        off_centre[:, :, 1, 1] = 0
        assert not off_centre.any()


def test_identity_large_shrinking_and_uneven_hand_computed():
    # c_in=8, c_out=4, C=4: floor(a/2) == b, value 4/4 = 1
    w = init.Identity("large", C=4)((4, 8, 3))
    expected = np.array(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 1, 1],
        ]
    )
    np.testing.assert_array_equal(_centre(w), expected)
    # c_in=3, c_out=5, C=2: floor(2a/3) = 0,0,1; floor(2b/5) = 0,0,0,1,1; value 2/5
    w = init.Identity("large", C=2)((5, 3, 1, 1, 1))
    expected = 0.4 * np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_allclose(w[:, :, 0, 0, 0], expected, rtol=1e-7)


def test_identity_large_with_equal_widths_is_basic():
    np.testing.assert_array_equal(
        init.Identity("large")((6, 6, 3, 3, 3)), init.Identity()((6, 6, 3, 3, 3))
    )


def test_identity_large_expand_then_shrink_is_identity_through_two_convs():
    # 4 -> 8 copies each channel at weight 1/2 into two; 8 -> 4 sums the pair back
    floatX = pytensor.config.floatX
    x_val = np.random.default_rng(3).standard_normal((1, 4, 5, 6, 4)).astype(floatX)
    W1 = init.Identity("large", C=4)((8, 4, 3, 3, 3))
    W2 = init.Identity("large", C=4)((4, 8, 3, 3, 3))
    x = pt.tensor("x", dtype=floatX, shape=(None,) * 5)
    y = dilated_conv(dilated_conv(x, W1, dilation=2), W2, dilation=4)
    f = pytensor.function([x], y, mode=FAST)
    np.testing.assert_allclose(f(x_val), x_val, rtol=1e-6, atol=1e-6)


def test_identity_noise_basic_everywhere_large_off_pattern():
    shape = (32, 32, 3, 3, 3)
    w = init.Identity(noise_std=0.1)(shape).astype(np.float64)
    noise = w - init.Identity()(shape)
    assert noise.std() == pytest.approx(0.1, rel=0.02)
    assert np.all(noise != 0)

    shape = (64, 16, 3, 3, 3)
    w = init.Identity("large", noise_std=0.01, C=16)(shape)
    pattern = np.zeros(shape, dtype=bool)
    for b in range(64):
        pattern[b, b // 4, 1, 1, 1] = True  # floor(16a/16) == floor(16b/64)
    np.testing.assert_array_equal(w[pattern], np.full(64, 16 / 64, dtype=w.dtype))
    eps = w[~pattern].astype(np.float64)
    assert abs(eps.mean()) < 0.0005
    assert eps.std() == pytest.approx(0.01, rel=0.02)


def test_identity_without_noise_draws_nothing():
    before = get_rng().bit_generator.state
    init.Identity()((4, 4, 3))
    init.Identity("large")((8, 4, 3))
    assert get_rng().bit_generator.state == before


@pytest.mark.parametrize(
    ("make", "shape", "match"),
    [
        (
            lambda: init.Identity(),
            (4, 4, 3, 2),
            r"Identity: invalid value for `shape`\. Expected odd kernel sizes \(a centre tap\); received shape=\(4, 4, 3, 2\)",
        ),
        (lambda: init.Identity("large"), (8, 4, 4), r"Expected odd kernel sizes"),
        (
            lambda: init.Identity(),
            (4, 4),
            r"Identity: invalid value for `shape`\. Expected at least 3 dimensions \(c_out, c_in, \*kernel\); received shape=\(4, 4\)",
        ),
        (
            lambda: init.Identity(),
            (8, 4, 3),
            r"Identity: invalid value for `shape`\. Expected c_out == c_in for variant='basic' \(use variant='large' to change width\); received shape=\(8, 4, 3\)",
        ),
    ],
)
def test_identity_shape_errors(make, shape, match):
    with pytest.raises(ConfigError, match=match):
        make()(shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"variant": "small"},
            r"Identity: invalid value for `variant`\. Expected 'basic' or 'large'; received variant='small'",
        ),
        (
            {"noise_std": -0.1},
            r"Identity: invalid value for `noise_std`\. Expected a real number >= 0",
        ),
        (
            {"variant": "large", "C": 0},
            r"Identity: invalid value for `C`\. Expected a positive int or None; received C=0",
        ),
        (
            {"variant": "large", "C": 2.0},
            r"Identity: invalid value for `C`\. Expected a positive int or None",
        ),
        ({"C": 4}, r"Identity: invalid value for `C`\. Expected None for variant='basic'"),
    ],
)
def test_identity_argument_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        init.Identity(**kwargs)


# --- dtype ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "initializer",
    [
        init.Constant(1.0),
        init.Normal(),
        init.Uniform(),
        init.GlorotUniform(),
        init.GlorotNormal(),
        init.HeUniform(),
        init.HeNormal(),
        init.Orthogonal(),
        init.Identity(noise_std=0.01),
        init.Identity("large"),
    ],
    ids=lambda i: type(i).__name__,
)
@pytest.mark.parametrize("floatX", ["float32", "float64"])
def test_samples_have_dtype_floatX(initializer, floatX):
    with pytensor.config.change_flags(floatX=floatX):
        assert initializer((4, 4, 3)).dtype == floatX
        assert init.Sparse()((10, 4)).dtype == floatX


def test_all_is_complete():
    expected = {
        "Initializer", "Constant", "Normal", "Uniform", "Glorot", "GlorotNormal", "GlorotUniform",
        "He", "HeNormal", "HeUniform", "Sparse", "Orthogonal", "Identity",
    }  # fmt: skip
    assert set(init.__all__) == expected
    assert all(issubclass(getattr(init, name), init.Initializer) for name in expected)

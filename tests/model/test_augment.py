"""`dilnet.model.augment`: each step against an oracle of its own (slicing, np.flip, np.rot90,
coordinate ramps, percentile counts, spectra), determinism, and the errors' wording."""

import attrs
import numpy as np
import pytest

from dilnet import ConfigError, ShapeError
from dilnet.model import PatchSampler
from dilnet.model.augment import Augment, AugmentParams, normalize_percentile

#: every step off: `Augment(**OFF)` must give its input back
OFF = dict(p_flip=0, p_affine=0, p_elastic=0, p_tissue=0, p_bias=0, p_slices=0, p_noise=0,
           p_gamma=0, normalize=False)  # fmt: skip
#: every step on
ON = dict(p_flip=1, p_affine=1, p_elastic=1, p_tissue=1, p_bias=1, p_slices=1, p_noise=1,
          p_gamma=1)  # fmt: skip


def volume(seed=0, shape=(12, 13, 14), channels=1, values=(0, 1, 2, 3)):
    """A float32 image in [0, 1] and labels in `values` (blocks, so labels have interiors)."""
    rng = np.random.default_rng(seed)
    x = rng.random((channels, *shape)).astype(np.float32)
    coarse = rng.choice(np.asarray(values), size=tuple(-(-n // 4) for n in shape))
    y = coarse.repeat(4, 0).repeat(4, 1).repeat(4, 2)[tuple(slice(n) for n in shape)]
    return x, np.ascontiguousarray(y)


def ramps(shape):
    """Channel k holds the voxel's coordinate along axis k: a warp of it is its coordinate map
    (linear interpolation of a linear function is exact)."""
    return np.indices(shape).astype(np.float32)


def only(**kwargs):
    return Augment(**{**OFF, **kwargs})


# --- identity and exact geometry -------------------------------------------------------------


def test_all_steps_off_return_the_input_exactly_as_new_arrays():
    x, y = volume()
    x0, y0 = x.copy(), y.copy()
    out_x, out_y = Augment(**OFF)(x, y, np.random.default_rng(0))
    np.testing.assert_array_equal(out_x, x)
    np.testing.assert_array_equal(out_y, y)
    assert out_x.dtype == np.float32 and out_y.dtype == y.dtype
    assert not np.shares_memory(out_x, x) and not np.shares_memory(out_y, y)
    window = (slice(2, 10), slice(3, 11), slice(None))
    wx, wy = Augment(**OFF)(x, y, np.random.default_rng(0), window=window)
    np.testing.assert_array_equal(wx, x[(slice(None), *window)])
    np.testing.assert_array_equal(wy, y[window])
    np.testing.assert_array_equal(x, x0)  # inputs untouched
    np.testing.assert_array_equal(y, y0)


def test_identity_affine_and_zero_displacement_are_exact():
    x, y = volume(channels=2)
    aug = Augment()
    params = AugmentParams(
        matrix=np.eye(3), translation=np.zeros(3), displacement=np.zeros((3, 2, 3, 2))
    )
    out_x, out_y = aug.apply(params, x, y, np.random.default_rng(0))
    np.testing.assert_array_equal(out_x, x)
    np.testing.assert_array_equal(out_y, y)


def test_integer_translation_equals_slicing():
    x, y = volume(channels=2)
    params = AugmentParams(matrix=np.eye(3), translation=np.array([2.0, -1.0, 3.0]))
    out_x, out_y = Augment().apply(params, x, y, np.random.default_rng(0))
    # output voxel o reads input o + translation
    np.testing.assert_array_equal(out_x[:, :-2, 1:, :-3], x[:, 2:, :-1, 3:])
    np.testing.assert_array_equal(out_y[:-2, 1:, :-3], y[2:, :-1, 3:])


def test_flips_equal_np_flip():
    x, y = volume()
    aug = only(p_flip=1, flip_axes=(0, 2))
    params = aug.sample_params(x, y, np.random.default_rng(0))
    np.testing.assert_array_equal(params.matrix, np.diag([-1.0, 1.0, -1.0]))
    out_x, out_y = aug.apply(params, x, y, np.random.default_rng(0))
    np.testing.assert_array_equal(out_x, np.flip(x, (1, 3)))
    np.testing.assert_array_equal(out_y, np.flip(y, (0, 2)))


def test_a_quarter_turn_equals_rot90():
    x, y = volume(shape=(9, 9, 9))
    turn = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # in the plane of axes 1 and 2
    params = AugmentParams(matrix=turn, translation=np.zeros(3))
    out_x, out_y = Augment().apply(params, x, y, np.random.default_rng(0))
    np.testing.assert_allclose(out_x, np.rot90(x, -1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_array_equal(out_y, np.rot90(y, -1, axes=(1, 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drawn_affine_and_elastic_maps_are_what_params_say(seed):
    # a warp of the coordinate ramps is the coordinate map itself
    shape = (20, 21, 22)
    x, y = ramps(shape), np.zeros(shape, np.int64)
    aug = only(p_affine=1, rotation=15, p_elastic=1, elastic_std=2.0)
    params = aug.sample_params(x, y, np.random.default_rng(seed))
    coords, _ = aug.apply(attrs.evolve(params, displacement=None), x, y, np.random.default_rng(0))
    centre = (np.array(shape) - 1) / 2
    o = np.indices(shape).reshape(3, -1).T - centre
    expected = (centre + params.translation + o @ params.matrix.T).T.reshape(3, *shape)
    inside = tuple(slice(4, n - 4) for n in shape)  # clear of the border (mode 'nearest')
    np.testing.assert_allclose(coords[(slice(None), *inside)],
                               expected[(slice(None), *inside)], atol=2e-4)  # fmt: skip
    # the drawn matrix: a rotation times a shear times 1 / scale, scales within the range
    singular = np.linalg.svd(params.matrix, compute_uv=False)
    assert 1 / 1.15 * 0.85 < singular.min() and singular.max() < 1 / 0.85 * 1.15
    assert np.abs(params.translation).max() <= aug.translation
    # elastic only: the displacement is smooth, bounded by its control values, not zero
    warped, _ = aug.apply(attrs.evolve(params, matrix=None, translation=None), x, y,
                          np.random.default_rng(0))  # fmt: skip
    u = (warped - x)[(slice(None), *inside)]
    bound = np.abs(params.displacement).reshape(3, -1).max(axis=1)
    assert (np.abs(u).reshape(3, -1).max(axis=1) <= bound + 1e-4).all()
    assert np.abs(u).max() > 0.05
    assert np.abs(np.diff(u, 2, axis=1)).max() < 0.1  # smooth: tiny second differences


def test_window_reads_the_volume_around_it():
    x, y = volume(shape=(24, 24, 24), channels=2)
    window = (slice(6, 16), slice(5, 17), slice(8, 18))
    aug = Augment(**ON)
    params = aug.sample_params(x, y, np.random.default_rng(3), window=window)
    a = aug.apply(params, x, y, np.random.default_rng(4), window=window)
    # the same from a crop holding everything the window reads: the result does not depend on
    # what lies further away
    crop = (slice(1, 22), slice(0, 23), slice(2, 24))
    inner = tuple(slice(w.start - c.start, w.stop - c.start) for w, c in zip(window, crop))
    b = aug.apply(params, x[(slice(None), *crop)], y[crop], np.random.default_rng(4),
                  window=inner)  # fmt: skip
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (2, 10, 12, 10) and a[1].shape == (10, 12, 10)


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_labels_stay_in_the_label_set_and_keep_their_dtype(dtype):
    values = (0, 3, 7)
    x, y = volume(values=values)
    y = y.astype(dtype)
    for seed in range(4):
        _, out = Augment(**ON, rotation=40)(x, y, np.random.default_rng(seed))
        assert out.dtype == dtype
        assert set(np.unique(out)) <= set(values)
        window = (slice(2, 10), slice(4, 12), slice(3, 11))
        _, out = Augment(**ON, rotation=40)(x, y, np.random.default_rng(seed), window=window)
        assert out.dtype == dtype and out.shape == (8, 8, 8)
        assert set(np.unique(out)) <= set(values)


# --- intensities ----------------------------------------------------------------------------


def test_bias_field_is_smooth_and_within_its_amplitude():
    shape = (40, 36, 30)
    ones, y = np.ones((1, *shape), np.float32), np.zeros(shape, np.int64)
    aug = only(p_bias=1, bias_amplitude=0.3, bias_spacing=16)
    for seed in range(5):
        params = aug.sample_params(ones, y, np.random.default_rng(seed))
        field, _ = aug.apply(params, ones, y, np.random.default_rng(0))
        assert 0.7 <= field.min() and field.max() <= 1.3
        assert field.max() - field.min() > 1e-3
        log = np.log(field[0].astype(np.float64))
        control = np.abs(params.bias).max()
        for axis, n in enumerate(shape):
            # a cubic B-spline's second derivative is at most 4 max|control| / spacing**2
            spacing = (n - 1) / (params.bias.shape[axis + 1] - 1)
            assert spacing <= 16
            assert np.abs(np.diff(log, 2, axis=axis)).max() <= 4 * control / spacing**2 + 1e-5


def test_tissue_means_and_stds_are_the_drawn_ones():
    x, y = volume(shape=(32, 32, 32), channels=2)
    aug = only(p_tissue=1, tissue_mix=(0, 0))
    params = aug.sample_params(x, y, np.random.default_rng(5))
    out, _ = aug.apply(params, x, y, np.random.default_rng(6))
    np.testing.assert_array_equal(params.tissue_labels, [0, 1, 2, 3])
    assert (params.tissue_means[:, 0] <= 0.1).all()  # the background's own range
    for c in range(2):
        for i, label in enumerate(params.tissue_labels):
            inside = out[c][y == label]
            mean, std = params.tissue_means[c, i], params.tissue_stds[c, i]
            assert abs(inside.mean() - mean) < 5 * std / np.sqrt(inside.size) + 1e-6
            assert abs(inside.std() - std) < 0.05 * std + 1e-6
    # with a mixing weight: (1 - w) * mean + w * the real image's mean
    params = attrs.evolve(params, tissue_mix=np.array([0.5, 0.25]))
    out, _ = aug.apply(params, x, y, np.random.default_rng(6))
    for c, w in enumerate((0.5, 0.25)):
        for i, label in enumerate(params.tissue_labels):
            inside = y == label
            expected = (1 - w) * params.tissue_means[c, i] + w * x[c][inside].mean()
            tol = 5 * params.tissue_stds[c, i] / np.sqrt(inside.sum()) + 1e-5
            assert abs(out[c][inside].mean() - expected) < tol


def high_fraction(image, axis):
    """The share of the power spectrum (DC left out) above half the Nyquist frequency along
    `axis`."""
    power = np.abs(np.fft.fftn(image - image.mean())) ** 2
    other = tuple(a for a in range(image.ndim) if a != axis)
    profile = power.sum(axis=other)
    k = np.abs(np.fft.fftfreq(image.shape[axis]))
    return profile[k > 0.25].sum() / profile.sum()


def test_thick_slices_remove_high_frequencies_along_their_axis_only():
    shape = (32, 32, 32)
    noise = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    y = np.zeros(shape, np.int64)
    aug = only(p_slices=1, slice_thickness=(3, 3))
    axes = set()
    for seed in range(8):
        params = aug.sample_params(noise, y, np.random.default_rng(seed))
        out, _ = aug.apply(params, noise, y, np.random.default_rng(0))
        axes.add(params.slice_axis)
        for axis in range(3):
            before, after = high_fraction(noise[0], axis), high_fraction(out[0], axis)
            if axis == params.slice_axis:
                assert after < 0.1 * before
            else:
                assert after == pytest.approx(before, rel=0.05)
    assert axes == {0, 1, 2}


def test_noise_and_gamma_are_the_drawn_ones():
    x, y = volume(shape=(24, 24, 24))
    aug = only(p_noise=1, noise_std=(0.02, 0.05))
    params = aug.sample_params(x, y, np.random.default_rng(1))
    out, _ = aug.apply(params, x, y, np.random.default_rng(2))
    assert (out - x).std() == pytest.approx(params.noise_std[0], rel=0.02)
    aug = only(p_gamma=1)
    params = aug.sample_params(x, y, np.random.default_rng(1))
    out, _ = aug.apply(params, x, y, np.random.default_rng(2))
    scaled = (x - x.min()) / (x.max() - x.min())
    np.testing.assert_allclose(out, scaled ** params.gamma[0], rtol=1e-5, atol=1e-6)


def test_the_default_output_is_normalised_over_the_foreground():
    x, y = volume(shape=(24, 24, 24))
    for seed in range(3):
        out, labels = Augment()(x, y, np.random.default_rng(seed))
        assert out.min() >= 0 and out.max() <= 1
        fg = out[0][labels != 0]
        assert 0.001 < (fg == 0).mean() < 0.02 and 0.001 < (fg == 1).mean() < 0.02


# --- normalize_percentile -------------------------------------------------------------------


def test_normalize_percentile_maps_the_percentiles_to_0_and_1():
    rng = np.random.default_rng(0)
    values = rng.permutation(np.linspace(1.0, 2.0, 10000))  # distinct, all nonzero
    image = np.zeros((1, 20, 25, 25))
    image.reshape(-1)[:10000] = values
    out = normalize_percentile(image)  # mask=None: the nonzero voxels
    assert out.dtype == np.float32 and out.shape == image.shape
    fg = out[image != 0]
    # the 0.5 and 99.5 percentiles of 10000 sorted values lie between values 49 and 50, and
    # between 9949 and 9950: 50 voxels at or below each, clipped to 0 and 1
    assert (fg == 0).sum() == 50 and (fg == 1).sum() == 50
    assert (out[image == 0] == 0).all()
    np.testing.assert_array_equal(normalize_percentile(image, low=0, high=100)[image != 0],
                                  ((image - 1) / 1.0)[image != 0].astype(np.float32))  # fmt: skip
    # a mask, shared by the channels; each channel scaled on its own
    two = np.stack([image[0], 10 * image[0] + 5])
    mask = image[0] != 0
    out = normalize_percentile(two, mask, 0, 100)
    np.testing.assert_allclose(out[0][mask], out[1][mask], atol=1e-6)


@pytest.mark.parametrize(
    ("image", "mask", "match"),
    [
        (np.full((1, 4, 4), 3.0), None, r"`image`.*constant"),
        (np.ones((1, 4, 4)), np.zeros((4, 4), bool), r"`image`.*none in the mask"),
        (np.zeros((1, 4, 4)), None, r"`image`.*nonzero"),
        (np.array([[[np.nan, 1.0], [2.0, 3.0]]]), None, r"`image`.*1 NaN or infinite"),
        (np.ones((1, 4, 4)), np.ones((3, 3), bool), r"`mask`. Expected None or a boolean"),
    ],
)
def test_normalize_percentile_refuses_what_it_cannot_scale(image, mask, match):
    with pytest.raises(ConfigError, match=r"^normalize_percentile: invalid value for " + match):
        normalize_percentile(image, mask)


def test_normalize_percentile_checks_its_percentiles():
    with pytest.raises(ConfigError, match=r"`low`. Expected less than high=5; received low=5"):
        normalize_percentile(np.ones((1, 3)), low=5, high=5)
    with pytest.raises(ConfigError, match=r"`high`. Expected a percentile in \[0, 100\]"):
        normalize_percentile(np.ones((1, 3)), high=101)


# --- determinism, validation, the sampler -----------------------------------------------------


def test_same_seed_same_result_bit_for_bit_other_seed_other_result():
    x, y = volume(shape=(16, 16, 16), channels=2)
    aug = Augment(**ON)
    window = (slice(2, 14), slice(0, 12), slice(4, 16))
    for w in (None, window):
        a = aug(x, y, np.random.default_rng(7), window=w)
        b = aug(x, y, np.random.default_rng(7), window=w)
        c = aug(x, y, np.random.default_rng(8), window=w)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
        assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_noise": 1.5}, "`p_noise`. Expected a probability in [0, 1]; received p_noise=1.5."),
        ({"scale": (1.2, 0.9)}, "`scale`. Expected a pair (low, high) with 0.1 <= low <= high"),
        ({"tissue_mix": (0, 2)}, "`tissue_mix`. Expected a pair (low, high) with 0 <= low <= "),
        ({"bias_amplitude": 1.0}, "`bias_amplitude`. Expected a number in [0, 1)"),
        ({"flip_axes": (0, 0)}, "`flip_axes`. Expected distinct spatial axes"),
        ({"normalize": 1}, "`normalize`. Expected True or False; received normalize=1."),
        ({"percentiles": (50, 50)}, "`percentiles`. Expected a pair (low, high) with low < high"),
        ({"slice_thickness": (0.5, 2)}, "`slice_thickness`. Expected a pair (low, high) with 1"),
    ],
)
def test_fields_are_validated(kwargs, message):
    with pytest.raises(ConfigError) as info:
        Augment(**kwargs)
    assert str(info.value).startswith(f"Augment: invalid value for {message}")


def test_augment_is_a_frozen_keyword_only_spec():
    aug = Augment(scale=[0.9, 1.1])
    assert aug.scale == (0.9, 1.1) and aug == Augment(scale=(0.9, 1.1))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        aug.p_flip = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Augment(0.5)  # type: ignore[misc]


def test_calls_are_checked():
    x, y = volume()
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"`rng`. Expected a numpy.random.Generator"):
        Augment()(x, y, 0)
    with pytest.raises(ConfigError, match=r"`y.dtype`. Expected an integer dtype"):
        Augment()(x, y.astype(float), rng)
    with pytest.raises(ShapeError, match=r"expected \(C, \*spatial\) and \(\*spatial\)"):
        Augment()(x, y[:-1], rng)
    with pytest.raises(ConfigError, match=r"`flip_axes`. Expected axes of the 2 spatial axes"):
        Augment(flip_axes=(2,))(x[:, 0], y[0], rng)
    with pytest.raises(ConfigError, match=r"`window`. Expected None or 3 slices of step 1"):
        Augment()(x, y, rng, window=(slice(0, 4), slice(0, 4)))
    with pytest.raises(ConfigError, match=r"`x`. Expected finite values; received NaN"):
        Augment()(np.where(x > 0.5, np.nan, x), y, rng)
    with pytest.raises(ConfigError, match=r"`window`"):
        Augment()(x, y, rng, window=(slice(0, 4), slice(4, 4), slice(0, 4)))
    with pytest.raises(ConfigError, match=r"`params.tissue_labels`.*received params.tissue_"):
        params = AugmentParams(tissue_labels=np.array([0]), tissue_means=np.zeros((1, 1)),
                               tissue_stds=np.zeros((1, 1)), tissue_mix=np.zeros(1))  # fmt: skip
        Augment().apply(params, x, y, rng)


def test_works_in_2d_and_as_a_patch_sampler_augment():
    x, y = volume(shape=(20, 20, 4))
    x2, y2 = x[..., 0], y[..., 0]
    out_x, out_y = Augment(**ON)(x2, y2, np.random.default_rng(0))
    assert out_x.shape == x2.shape and set(np.unique(out_y)) <= set(np.unique(y2))

    def draw():
        sampler = PatchSampler([x2], [y2], 8, batch_size=3, seed=1, augment=Augment())
        return sampler.sample()

    (a, ya), (b, yb) = draw(), draw()
    assert a.shape == (3, 1, 8, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("fields", [ON, OFF], ids=["on", "off"])
def test_a_patch_sampler_augments_the_whole_volume_in_the_patch_window(fields):
    x, y = volume(seed=2, shape=(24, 22, 20), channels=2)
    patch, augment = (8, 10, 12), Augment(**fields)
    sampler = PatchSampler([x], [y], patch, batch_size=3, seed=5, augment=augment)
    xb, yb = sampler.sample()
    assert xb.shape == (3, 2, *patch) and xb.dtype == np.float32 and yb.shape == (3, *patch)
    assert set(np.unique(yb)) <= set(np.unique(y))
    # oracle: the sampler's draws replayed by hand, a volume and a corner, then the augment
    # called on the whole volume with the window
    rng = np.random.default_rng(5)
    for k in range(3):
        assert rng.integers(1) == 0
        corner = [int(rng.integers(0, n - p + 1)) for n, p in zip(y.shape, patch)]
        window = tuple(slice(c, c + p) for c, p in zip(corner, patch))
        ex, ey = augment(x, y, rng, window=window)
        np.testing.assert_array_equal(xb[k], ex)
        np.testing.assert_array_equal(yb[k], ey)
        if fields is OFF:  # nothing drawn changes anything: the window itself
            np.testing.assert_array_equal(xb[k], x[(slice(None), *window)])
            np.testing.assert_array_equal(yb[k], y[window])
    # the same seed gives the same batches; another seed other ones
    again = PatchSampler([x], [y], patch, batch_size=3, seed=5, augment=augment).sample()
    other = PatchSampler([x], [y], patch, batch_size=3, seed=6, augment=augment).sample()
    np.testing.assert_array_equal(again[0], xb)
    np.testing.assert_array_equal(again[1], yb)
    assert not np.array_equal(other[0], xb)


def test_balanced_patches_are_augmented_in_their_window_too():
    x, y = volume(seed=3, shape=(20, 20, 20))
    sampler = PatchSampler([x, x[:, :16]], [y, y[:16]], 8, batch_size=4, strategy="balanced",
                           seed=0, augment=Augment(**ON))  # fmt: skip
    xb, yb = sampler.sample()
    assert xb.shape == (4, 1, 8, 8, 8) and yb.shape == (4, 8, 8, 8)
    assert set(np.unique(yb)) <= set(np.unique(y)) and np.isfinite(xb).all()


def test_params_that_do_not_fit_are_refused():
    x, y = volume(channels=2)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"`params`. Expected an AugmentParams"):
        Augment().apply({}, x, y, rng)
    with pytest.raises(ShapeError, match=r"params.bias has shape \(1, 2, 2, 2\); expected 4 axes"):
        Augment().apply(AugmentParams(bias=np.zeros((1, 2, 2, 2))), x, y, rng)
    with pytest.raises(ShapeError, match=r"params.matrix has shape \(2, 2\)"):
        Augment().apply(AugmentParams(matrix=np.eye(2)), x, y, rng)
    with pytest.raises(ConfigError, match=r"`params.tissue_labels`. Expected tissue_labels"):
        Augment().apply(AugmentParams(tissue_labels=np.arange(4)), x, y, rng)


def test_windows_without_foreground_or_contrast_are_clipped_not_refused():
    x, y = volume()
    background = np.zeros_like(y)
    out, _ = Augment()(x, background, np.random.default_rng(0))  # nonzero voxels instead
    assert out.min() == 0 and out.max() == 1
    blank = np.full_like(x, 0.25)
    out, _ = only(normalize=True)(blank, y, np.random.default_rng(0))  # nothing to scale
    np.testing.assert_array_equal(out, blank)

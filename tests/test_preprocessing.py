"""Images onto a model's grid and back (`dilnet.preprocessing`), against hand-made geometry."""

import nibabel as nib
import numpy as np
import pytest

from dilnet.errors import ConfigError, VolumeError
from dilnet.io.volume import Volume
from dilnet.model.contract import InputContract, normalize_intensities
from dilnet.preprocessing import conform

RAS2 = InputContract(orientation="RAS", voxel_size=(2.0, 2.0, 2.0), normalization="none")


def _volume(data, affine, path="img.nii.gz", header=None):
    if header is None:
        header = nib.Nifti1Image(data, affine).header
    return Volume(data=data[np.newaxis], affine=affine, header=header, format="nifti", path=path)


def _ras(shape=(8, 10, 6), zoom=2.0, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.uniform(1, 2, shape).astype(np.float32)
    affine = np.diag([zoom, zoom, zoom, 1.0])
    affine[:3, 3] = (-7.0, 3.0, 11.0)
    return data, affine


def test_an_image_already_on_the_grid_is_unchanged():
    data, affine = _ras()
    c = conform(_volume(data, affine), RAS2)
    np.testing.assert_array_equal(c.data[0], data)
    np.testing.assert_allclose(c.affine, affine)
    np.testing.assert_array_equal(c.to_input(c.data)[0], data)


def test_lps_storage_gives_the_same_grid_and_maps_back_to_its_own_order():
    data, affine = _ras()
    # the same brain stored LPS: axes 0 and 1 reversed, the affine says so
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [s - 1 for s in data.shape[:2]]
    lps = data[::-1, ::-1, :].copy()
    vol = _volume(lps, affine @ flip)
    assert nib.aff2axcodes(vol.affine) == ("L", "P", "S")
    c = conform(vol, RAS2)
    np.testing.assert_array_equal(c.data[0], data)
    np.testing.assert_allclose(c.affine, affine)
    # a per-voxel map on the model grid comes back in the file's (LPS) order
    np.testing.assert_array_equal(c.to_input(c.data)[0], lps)


def test_1mm_to_2mm_samples_between_voxel_pairs():
    # a linear ramp survives the anti-aliasing blur and the linear interpolation exactly (away
    # from the edges): model voxel j sits at input voxel 2j + 0.5
    i, j, k = np.meshgrid(np.arange(20), np.arange(16), np.arange(12), indexing="ij")
    data = (3.0 * i + 2.0 * j - k + 100).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    c = conform(_volume(data, affine), RAS2)
    assert c.data.shape == (1, 10, 8, 6)
    x = 2 * np.arange(10) + 0.5
    y = 2 * np.arange(8) + 0.5
    z = 2 * np.arange(6) + 0.5
    expected = 3.0 * x[:, None, None] + 2.0 * y[None, :, None] - z[None, None, :] + 100
    np.testing.assert_allclose(c.data[0, 2:-2, 2:-2, 2:-2], expected[2:-2, 2:-2, 2:-2], rtol=1e-5)
    # the grid's affine puts voxel 0 at world 0.5 mm
    np.testing.assert_allclose(c.affine[:3, 3], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(np.diag(c.affine)[:3], [2, 2, 2])
    # back: input voxel i reads model position (i - 0.5) / 2, so the ramp comes back
    back = c.to_input(c.data)[0]
    np.testing.assert_allclose(back[4:-4, 4:-4, 4:-4], data[4:-4, 4:-4, 4:-4], rtol=1e-5)


def test_shrinking_keeps_the_background_zero_where_a_2mm_volume_has_it():
    # a 1 mm box of whole 2 x 2 x 2 blocks: the same brain stored at 2 mm (block means) is
    # nonzero on exactly the box's blocks. Resampling smooths before it shrinks; the smoothing's
    # tails must not leave faint nonzero values in the blocks beside the box (they would pull the
    # foreground's low percentile to about 0, whatever the intensities' units).
    rng = np.random.default_rng(0)
    data = np.zeros((20, 16, 12), np.float32)
    data[4:12, 2:10, 2:8] = rng.uniform(50, 100, (8, 8, 6))
    blocks = data.reshape(10, 2, 8, 2, 6, 2).mean(axis=(1, 3, 5))
    c = conform(_volume(data, np.eye(4)), RAS2)
    np.testing.assert_array_equal(c.data[0] != 0, blocks != 0)
    # in scanner-like units (20 x + 300 inside, 0 outside) the foreground is the same, and the
    # contract's scaling of the blocks inside the box matches the original's
    contract = InputContract(voxel_size=(2.0, 2.0, 2.0), normalization="percentile", low=0,
                             high=100)  # fmt: skip
    units = np.where(data > 0, 20 * data + 300, 0).astype(np.float32)
    a = conform(_volume(data, np.eye(4)), contract).data[0]
    b = conform(_volume(units, np.eye(4)), contract).data[0]
    np.testing.assert_array_equal(a != 0, b != 0)
    inner = np.zeros_like(blocks, bool)
    inner[3:5, 2:4, 2:3] = True  # blocks whose smoothing reads no background
    np.testing.assert_allclose(a[inner], b[inner], atol=0.05)


def test_voxels_a_hair_off_the_model_s_size_are_copied_whole():
    # 1.99999 mm is the model's 2 mm to resampling (copied, not resampled): every foreground
    # voxel, the box's surface included, keeps its value
    data, affine = _ras(zoom=1.99999)
    data[:2] = 0
    contract = InputContract(voxel_size=(2.0, 2.0, 2.0), normalization="none")
    np.testing.assert_array_equal(conform(_volume(data, affine), contract).data[0], data)


def test_a_foreground_too_scattered_for_the_model_grid_is_refused():
    # isolated 1 mm voxels: none fills one eighth of a 2 mm voxel after the anti-aliasing blur
    data = np.zeros((16, 16, 16), np.float32)
    data[1::4, 1::4, 1::4] = 50.0
    contract = InputContract(voxel_size=(2.0, 2.0, 2.0), normalization="percentile")
    with pytest.raises(
        VolumeError, match=r"img.nii.gz: its 64 nonzero voxel\(s\) .* too scattered"
    ):
        conform(_volume(data, np.eye(4)), contract, "img.nii.gz")


def test_percentile_scaling_over_the_foreground():
    data = np.zeros((6, 6, 6), np.float32)
    data[1:5, 1:5, 1:5] = np.arange(64).reshape(4, 4, 4) + 10
    contract = InputContract(normalization="percentile", low=0, high=100)
    out = normalize_intensities(data, contract, rank=3)
    inside = out[1:5, 1:5, 1:5]
    np.testing.assert_allclose(inside, (np.arange(64).reshape(4, 4, 4)) / 63, rtol=1e-6)
    # background (0) lies below the foreground's minimum: clipped to 0
    assert out[0].max() == 0


@pytest.mark.parametrize(
    "data, match",
    [
        (np.zeros((6, 6, 6)), "none in its nonzero voxels"),
        (np.full((6, 6, 6), 3.0), r"both equal to 3 \(a constant image\)"),
        (np.where(np.eye(6)[:, :, None] > 0, np.nan, 1.0) * np.ones((6, 6, 6)), "NaN"),
    ],
)
def test_blank_constant_and_non_finite_images_are_refused(data, match):
    contract = InputContract(normalization="percentile")
    with pytest.raises(VolumeError, match=match):
        normalize_intensities(data, contract, rank=3, where="t1.nii")


def test_an_image_without_orientation_is_refused():
    data, affine = _ras()
    image = nib.Nifti1Image(data, affine)
    image.header["sform_code"] = 0
    image.header["qform_code"] = 0
    with pytest.raises(VolumeError, match=r"t1\.nii: .*sform and qform codes are both 0"):
        conform(_volume(data, affine, "t1.nii", header=image.header), RAS2, "t1.nii")


def test_no_affine_and_a_singular_affine_are_refused():
    data, affine = _ras()
    vol = Volume(data=data[np.newaxis], affine=None, header=None, format="npy", path="a.npy")
    with pytest.raises(VolumeError, match="no affine"):
        conform(vol, RAS2, "a.npy")
    singular = affine.copy()
    singular[2] = 0
    with pytest.raises(VolumeError, match="not usable"):
        conform(_volume(data, singular, header=nib.Nifti1Image(data, affine).header), RAS2)


def test_voxel_sizes_the_resampler_cannot_honour_are_refused():
    data, affine = _ras()
    tiny = affine.copy()
    tiny[:3, :3] *= 1e-6  # micrometre voxels would need a grid of one voxel
    with pytest.raises(VolumeError, match="too small"):
        conform(_volume(data, tiny), RAS2)
    huge = affine.copy()
    huge[:3, :3] *= 1e4  # 20 m voxels to 2 mm: far too many voxels
    with pytest.raises(VolumeError, match="more than"):
        conform(_volume(data, huge), RAS2)


@pytest.mark.parametrize(
    "field, value",
    [("orientation", "RAR"), ("voxel_size", (2.0, 0.0, 2.0)), ("normalization", "zscore"),
     ("low", 120), ("foreground", "brain")],
)  # fmt: skip
def test_contract_fields_are_checked(field, value):
    with pytest.raises(ConfigError, match=f"`{field}`"):
        InputContract(**{field: value})


def test_contract_round_trips_and_names_where_a_bad_dict_came_from():
    contract = InputContract(orientation="RAS", voxel_size=(2, 2, 2), normalization="percentile",
                             class_names=("background", "csf", "gm", "wm"))  # fmt: skip
    assert InputContract.from_dict(contract.to_dict()) == contract
    with pytest.raises(ConfigError, match=r"model\.npz: unknown keys \['spacing'\]"):
        InputContract.from_dict({"spacing": 2}, where="model.npz")


# ---------------------------------------------------------------------------------------------
# End to end: a tiny seeded model with a contract, on images stored in different ways


@pytest.fixture(scope="module")
def tiny_model():
    from dilnet import Sequential
    from dilnet import blocks as B
    from dilnet.model import Model

    spec = Sequential([B.Input(channels=1, spatial=(None, None, None)),
                       B.Conv(filters=3, kernel=3), B.Classifier(num_classes=3)])  # fmt: skip
    contract = InputContract(orientation="RAS", voxel_size=(2.0, 2.0, 2.0),
                             normalization="percentile", foreground="nonzero")  # fmt: skip
    model = Model(spec, seed=0, input_contract=contract)
    rng = np.random.default_rng(3)
    for p in model.network.get_params():  # weights large enough for every class to win
        value = p.get_value()
        p.set_value(rng.normal(0, 1.5, value.shape).astype(value.dtype))
    return model


def _brain(shape=(16, 20, 12), seed=0):
    """A smooth 'brain' at 1 mm, RAS, zero outside an ellipsoid, in scanner units."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    data = ndimage.gaussian_filter(rng.uniform(0, 1, shape), 1.5)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(g**2 for g in grid) < 0.9
    data = np.where(inside, 1000 + 3000 * (data - data.min()) / np.ptp(data), 0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-8.0, -12.0, 5.0)
    return data.astype(np.float32), affine


def _lps(data, affine):
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [n - 1 for n in data.shape[:2]]
    return data[::-1, ::-1].copy(), affine @ flip


def test_an_lps_copy_gives_the_flipped_result_of_the_ras_copy(tiny_model, tmp_path):
    from dilnet.preprocessing import predict_image

    data, affine = _brain()
    ras, lps = tmp_path / "ras.nii.gz", tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), ras)
    nib.save(nib.Nifti1Image(*_lps(data, affine)), lps)
    assert nib.aff2axcodes(nib.load(lps).affine) == ("L", "P", "S")
    p_ras = predict_image(tiny_model, ras)
    p_lps = predict_image(tiny_model, lps)
    assert p_ras.shape == (3, *data.shape) and p_ras.dtype == np.float32
    np.testing.assert_allclose(p_ras.sum(axis=0), 1, atol=1e-5)  # probabilities, mapped back
    np.testing.assert_allclose(p_lps, p_ras[:, ::-1, ::-1], rtol=0, atol=1e-6)
    labels = p_ras.argmax(axis=0)
    assert len(np.unique(labels)) > 1  # the check is not vacuous
    # the intensity scaling is the contract's: scanner units (x 1.7 + 3) change nothing
    nib.save(nib.Nifti1Image(np.where(data > 0, data * 1.7 + 3, 0), affine), tmp_path / "s.nii")
    scanner = predict_image(tiny_model, tmp_path / "s.nii")
    np.testing.assert_allclose(scanner, p_ras, rtol=0, atol=2e-3)  # float32 rounding


def test_segment_image_keeps_the_input_s_shape_affine_and_header(tiny_model, tmp_path):
    from dilnet.preprocessing import predict_image, segment_image

    data, affine = _lps(*_brain())
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=2)
    image.header["descrip"] = b"scan 7"
    nib.save(image, tmp_path / "t1.nii.gz")
    out = segment_image(tiny_model, tmp_path / "t1.nii.gz")
    assert out.shape == data.shape
    np.testing.assert_array_equal(out.affine, affine)
    assert out.get_data_dtype() == np.uint8
    header = out.header
    assert header.get_zooms() == image.header.get_zooms()
    assert header.get_xyzt_units() == ("mm", "sec")
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 2)
    np.testing.assert_allclose(header.get_sform(), affine)
    np.testing.assert_allclose(header.get_qform(), affine, atol=1e-6)
    assert header["descrip"].tobytes().rstrip(b"\0") == b"scan 7"
    expected = predict_image(tiny_model, tmp_path / "t1.nii.gz").argmax(axis=0)
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), expected)
    # a nibabel image in memory works the same way
    np.testing.assert_array_equal(np.asanyarray(segment_image(tiny_model, image).dataobj), expected)


def test_a_model_without_a_contract_is_refused(tiny_model, tmp_path):
    from dilnet.model import Model
    from dilnet.preprocessing import predict_image

    bare = Model(tiny_model.spec, seed=0)  # the same network, no contract
    nib.save(nib.Nifti1Image(*_brain()), tmp_path / "t1.nii")
    with pytest.raises(ConfigError, match=r"predict_image: the model declares no input contract"):
        predict_image(bare, tmp_path / "t1.nii")


def test_images_that_cannot_be_segmented_name_the_file(tiny_model, tmp_path):
    from dilnet.errors import DilnetError
    from dilnet.preprocessing import segment_image

    data, affine = _brain()
    cases = {
        "flat.nii.gz": nib.Nifti1Image(data[:, :, 0], affine),  # 2-D
        "zero.nii.gz": nib.Nifti1Image(np.zeros_like(data), affine),  # blank
        "five.nii.gz": nib.Nifti1Image(data[..., None, None].repeat(2, -1), affine),  # 5-D
    }
    for name, image in cases.items():
        nib.save(image, tmp_path / name)
        with pytest.raises(DilnetError, match=rf"^{tmp_path / name}: "):
            segment_image(tiny_model, tmp_path / name)

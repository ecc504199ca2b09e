"""Predict images in their own space: reorient, resample, scale, predict, and map back.

A model's `dilnet.model.contract.InputContract` says which orientation, voxel size and intensity
scaling it was trained on. `predict_image` brings an image with an affine (a NIfTI file, a
nibabel image or a `dilnet.io.volume.Volume`) onto that grid, predicts it tile by tile
(`dilnet.inference.predict_volume`), and resamples the class probabilities back onto the input's
own voxels, so the result lies on the input's grid, in its array order, with its affine.
`segment_image` returns the label map as a nibabel image with the input's affine and header;
``dilnet predict`` uses the same steps.

The steps, per spatial axis:

1. *Reorient* with nibabel's orientation tools (`nibabel.orientations.io_orientation`,
   `ornt_transform`, `apply_orientation`): flips and axis swaps only, no interpolation.
2. *Resample* to the contract's voxel size: a reoriented axis with voxel size ``z`` and the
   model's ``v`` is sampled every ``s = v / z`` input voxels, model voxel ``j`` centred at input
   voxel ``j * s + (s - 1) / 2`` (a 2 mm voxel covers 1 mm voxels ``2j`` and ``2j + 1``), on
   ``ceil(n / s)`` voxels, linearly. Before shrinking (``s > 1``) the image is smoothed with a
   Gaussian of ``sigma = (s - 1) / 2`` input voxels (scikit-image's anti-aliasing rule) so thin
   structures are averaged rather than skipped. With a ``"nonzero"`` foreground, the nonzero
   mask is smoothed and resampled the same way, and a model voxel where it falls below
   ``1 / prod(s)`` over the shrunk axes (one input voxel's share of the footprint, were the mask
   not smoothed: 1/8 from 1 to 2 mm) is set to 0: the smoothing's tails would otherwise put
   faint nonzero values into the background, which a volume stored at the model's voxel size
   (a block mean, say) does not have, and they would pull the low percentile of step 3 to about
   0 whatever the intensities' units. After smoothing, a model voxel whose block holds a single
   isolated foreground voxel falls below the threshold too.
3. *Scale intensities* (`dilnet.model.contract.normalize_intensities`) on the model grid.
4. *Predict* the class probabilities (`predict_volume`: exact tiling).
5. *Map back*: every input voxel reads the probabilities at its position on the model grid
   (linear interpolation of each class), the label is the most probable class, and the
   orientation is undone.
"""

import math

import nibabel as nib
import numpy as np
from scipy import ndimage

from .errors import ConfigError, VolumeError, invalid
from .inference import predict_volume
from .io.volume import Volume, read_volume
from .model.contract import InputContract, normalize_intensities

__all__ = ["MAX_VOXELS", "Conformed", "conform", "predict_image", "segment_image"]

#: the largest model grid resampling may make (2**28 voxels: 1 GiB per float32 channel)
MAX_VOXELS = 2**28


class Conformed:
    """An image on a model's grid, and how to get back to the input's grid.

    Attributes
    ----------
    data : ndarray, (C, *grid)
        Reoriented, resampled, scaled: what the model predicts.
    affine : ndarray, 4x4
        Voxel -> world of the model grid.
    """

    def __init__(self, data, affine, transform, reoriented_shape, steps):
        self.data, self.affine = data, affine
        self._transform, self._shape, self._steps = transform, reoriented_shape, steps

    def to_input(self, per_class):
        """`per_class` ``(K, *grid)`` on the model grid -> ``(K, *input spatial)`` on the input's
        grid (linear per class, edges held)."""
        steps = np.asarray(self._steps, dtype=np.float64)
        back = np.empty((len(per_class), *self._shape), np.float32)
        for k, channel in enumerate(per_class):
            back[k] = ndimage.affine_transform(
                np.asarray(channel, np.float32), np.diag(1 / steps), offset=-(steps - 1) / (2 * steps),
                output_shape=self._shape, order=1, mode="nearest",
            )  # fmt: skip
        if self._transform is None:
            return back
        undo = nib.orientations.ornt_transform(*self._transform[::-1])
        return np.stack([nib.orientations.apply_orientation(c, undo) for c in back])


def _affine(volume, where):
    affine = volume.affine
    if affine is None:
        raise VolumeError(
            f"{where}: the file has no affine (voxel -> world), so its orientation and voxel "
            "size are unknown; save it as NIfTI with its affine, or predict the array with "
            "predict_volume on the model's grid."
        )
    header = volume.header
    if isinstance(header, nib.Nifti1Header) and not (header["sform_code"] or header["qform_code"]):
        raise VolumeError(
            f"{where}: the NIfTI header's sform and qform codes are both 0 (no orientation: "
            "nibabel would guess one from the voxel sizes alone); set an orientation (e.g. "
            "nibabel's set_sform or fslorient) and try again."
        )
    affine = np.asarray(affine, np.float64)
    rank = volume.data.ndim - 1
    linear = affine[:rank, :rank]
    if not np.isfinite(affine).all() or np.linalg.cond(linear) > 1e12:
        raise VolumeError(
            f"{where}: the affine is not usable (non-finite or singular): {affine.tolist()}; "
            "its voxel -> world mapping must be invertible."
        )
    return affine


def _resample(channel, steps, grid):
    """One channel on the model grid (module docstring, step 2), float32."""
    channel = np.asarray(channel, np.float32)
    sigma = np.maximum(0.0, (steps - 1) / 2)
    if sigma.any():
        channel = ndimage.gaussian_filter(channel, sigma, mode="nearest")
    return ndimage.affine_transform(
        channel, np.diag(steps), offset=(steps - 1) / 2, output_shape=grid, order=1,
        mode="nearest",
    )  # fmt: skip


def conform(volume, contract, where="image") -> Conformed:
    """`volume` (a `Volume` with an affine) on the grid `contract` describes (module docstring,
    steps 1-3).

    Raises
    ------
    VolumeError
        Naming `where`: no usable affine, a grid the resampler cannot make (voxel sizes that
        would give more than `MAX_VOXELS` voxels or fewer than one per axis), a blank image, a
        nonzero foreground too scattered to fill one model voxel (step 2).
    """
    if not isinstance(contract, InputContract):
        raise ConfigError(invalid("conform", "contract", "an InputContract", contract))
    data = np.asarray(volume.data)
    rank = data.ndim - 1
    affine = _affine(volume, where)
    transform = None
    if contract.orientation is not None:
        if len(contract.orientation) != rank:
            raise VolumeError(
                f"{where}: expected a {len(contract.orientation)}-D image (the model's "
                f"orientation is {contract.orientation}); received {rank}-D."
            )
        current = nib.orientations.io_orientation(affine)
        target = nib.orientations.axcodes2ornt(contract.orientation)
        ornt = nib.orientations.ornt_transform(current, target)
        data = np.stack([nib.orientations.apply_orientation(c, ornt) for c in data])
        affine = affine @ nib.orientations.inv_ornt_aff(ornt, volume.data.shape[1:])
        transform = (current, target)
    shape = data.shape[1:]
    zooms = nib.affines.voxel_sizes(affine)[:rank]
    if contract.voxel_size is None:
        steps = np.ones(rank)
    else:
        if len(contract.voxel_size) != rank:
            raise VolumeError(
                f"{where}: expected a {len(contract.voxel_size)}-D image (the model's voxel "
                f"size is {contract.voxel_size}); received {rank}-D."
            )
        steps = np.asarray(contract.voxel_size, np.float64) / zooms
    grid = tuple(max(1, math.ceil(n / s - 1e-6)) for n, s in zip(shape, steps, strict=True))
    voxels = math.prod(grid) * len(data)
    if voxels > MAX_VOXELS or not all(np.isfinite(steps)):
        raise VolumeError(
            f"{where}: resampling voxels of {tuple(round(float(z), 4) for z in zooms)} mm to the "
            f"model's {contract.voxel_size} mm would give {grid} voxels (more than "
            f"{MAX_VOXELS:,}); check the header's voxel sizes."
        )
    if min(shape) < 2 or any(g < 2 for g in grid):
        raise VolumeError(
            f"{where}: a {shape} image of {tuple(round(float(z), 4) for z in zooms)} mm voxels "
            f"gives {grid} voxels at the model's {contract.voxel_size} mm: too small to segment."
        )
    resampled = np.empty((len(data), *grid), np.float32)
    same = np.allclose(steps, 1)  # already at the model's voxel size: copied as it is
    for c, channel in enumerate(data):
        channel = np.asarray(channel, np.float32)
        if not np.isfinite(channel).all():
            raise VolumeError(
                f"{where}: {np.count_nonzero(~np.isfinite(channel))} voxel(s) are NaN or "
                "infinite (as float32); they would spread through every receptive field."
            )
        resampled[c] = channel if same else _resample(channel, steps, grid)
    shrunk = steps > 1
    if contract.foreground == "nonzero" and not same and shrunk.any():
        nonzero = (np.asarray(data) != 0).any(axis=0)
        # the foreground's share of each model voxel, smoothed and resampled as the image is
        outside = _resample(nonzero, steps, grid) < 1 / np.prod(steps[shrunk])
        if outside.all() and nonzero.any():
            raise VolumeError(
                f"{where}: its {np.count_nonzero(nonzero)} nonzero voxel(s) of "
                f"{tuple(round(float(z), 4) for z in zooms)} mm are too scattered to fill one "
                f"voxel of the model's {contract.voxel_size} mm (smoothed and resampled, the "
                "foreground covers less than one input voxel's share of every model voxel); "
                "the model expects a skull-stripped image whose background is 0 and whose "
                "foreground is solid."
            )
        resampled[:, outside] = 0
    grid_affine = affine @ np.block(
        [[np.diag(steps), ((steps - 1) / 2)[:, None]], [np.zeros((1, rank)), np.ones((1, 1))]]
    )
    scaled = normalize_intensities(resampled, contract, rank, where)
    return Conformed(scaled, grid_affine, transform, shape, steps)


def _name(image):
    if isinstance(image, Volume):
        return str(image.path)
    if isinstance(image, nib.spatialimages.SpatialImage):
        return image.get_filename() or "image"
    return str(image)


def _as_volume(image, where):
    if isinstance(image, Volume):
        return image
    if isinstance(image, nib.spatialimages.SpatialImage):
        array = np.asanyarray(image.dataobj)
        if array.ndim not in (3, 4):
            raise VolumeError(f"{where}: expected a 3-D image (or 4-D with channels last); "
                              f"received shape {array.shape}.")  # fmt: skip
        data = array[np.newaxis] if array.ndim == 3 else np.moveaxis(array, -1, 0)
        return Volume(data=data, affine=image.affine, header=image.header, format="nifti",
                      path=image.get_filename() or where)  # fmt: skip
    return read_volume(image, rank=3)


def predict_image(model, image, *, contract=None, tile=None, memory_limit=None, batch_size=1,
                  progress=False):  # fmt: skip
    """Class probabilities of `image` on its own grid.

    Parameters
    ----------
    model : Model
        A model whose ``input_contract`` (or `contract`) gives orientation, voxel size and
        scaling.
    image : str, os.PathLike, nibabel image or Volume
        A 3-D image with an affine (a NIfTI file; channels last for several channels).
    contract : InputContract, optional
        Overrides the model's.
    tile, memory_limit, batch_size, progress
        As in `dilnet.inference.predict_volume`.

    Returns
    -------
    ndarray, (K, *image spatial shape), float32
        In the image's own array order.

    Raises
    ------
    ConfigError
        A model without an input contract (and no `contract`).
    VolumeError
        Naming the file: not a 3-D image of the model's channels, no usable affine, NaN or
        infinite voxels, a blank or constant image, a grid the resampler cannot make.
    """
    where = _name(image)
    contract = contract if contract is not None else getattr(model, "input_contract", None)
    if contract is None:
        raise ConfigError(
            "predict_image: the model declares no input contract (model.input_contract is "
            "None); set one (dilnet.model.InputContract) or predict arrays on the model's grid "
            "with predict_volume."
        )
    volume = _as_volume(image, where)
    channels = model.network.input_shape[1]
    if len(volume.data) != channels:
        raise VolumeError(
            f"{where}: expected a 3-D image of {channels} channel(s) (the model's input; "
            f"channels last in NIfTI); received {len(volume.data)} channel(s) of "
            f"{tuple(volume.data.shape[1:])} (read as {volume.data.shape}, (C, *spatial))."
        )
    conformed = conform(volume, contract, where)
    probabilities = predict_volume(model, conformed.data, tile=tile, memory_limit=memory_limit,
                                   batch_size=batch_size, progress=progress, normalize=False)  # fmt: skip
    return conformed.to_input(probabilities)


def segment_image(model, image, **kwargs) -> nib.Nifti1Image:
    """The label map of `image` (`predict_image`'s most probable class per voxel) as a
    nibabel image with the input's affine and header (uint8 labels)."""
    volume = _as_volume(image, _name(image))
    labels = predict_image(model, volume, **kwargs).argmax(axis=0).astype(np.uint8)
    header = volume.header.copy() if isinstance(volume.header, nib.Nifti1Header) else None
    out = nib.Nifti1Image(labels, volume.affine, header=header)
    out.set_data_dtype(np.uint8)
    out.header.set_slope_inter(1, 0)
    return out

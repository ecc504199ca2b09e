"""The tissue labelling shared by the data recipes: one classical procedure for every brain.

`make_mni152_data.py` (training data) and `make_colin27_data.py` (evaluation data) both call
`brain_mask` and `atropos_labels` with the constants below, and both reduce 1 mm volumes to 2 mm
with `block_mean_2` / `block_mode_2`, so that "CSF", "grey matter" and "white matter" mean the
same thing in training and evaluation.

The procedure, on a skull-stripped 1 mm T1 (``t1``, zero outside the brain):

1. *Brain mask* (`brain_mask`): ``t1 > 0``, its largest 6-connected component, holes filled
   (``scipy.ndimage.label`` with the default 6-connected structure,
   ``scipy.ndimage.binary_fill_holes``).
2. *No bias correction* (`BIAS_CORRECT` = False). Both sources are averages of scans that were
   corrected for intensity non-uniformity before averaging, and N4 does not tell residual
   shading from anatomy here. Measured with `n4` (ANTs N4 inside the mask as
   ``antsCorticalThickness.sh`` runs it: shrink `N4_SHRINK_FACTOR`, `N4_ITERATIONS` at four
   levels, tolerance `N4_TOLERANCE`, spline distance `N4_SPLINE_DISTANCE_MM` mm): the "field"
   it finds on the 152-subject MNI average (1st-99th percentile / median 0.886-1.122) is as
   large as on the single subject Colin27 (0.878-1.089), and follows the tissue layout on both
   (high over the deep white matter, low in the cerebellum and brain stem); with one or two
   fitting levels it is again as large on MNI152 as on Colin27 (0.973-1.044 vs 0.979-1.039;
   0.928-1.081 vs 0.933-1.072). Dividing by it would make the class boundaries depend on
   position (on Colin27 it changes the labels by Dice 0.90 CSF, 0.91 GM, 0.93 WM) with no
   sign of a coil profile to remove. The step stays available (`atropos_labels(...,
   bias_correct=True)`) to repeat the measurement.
3. *Classification* (`atropos_labels`): ANTs Atropos, 3 Gaussian classes inside the mask,
   initialised by k-means (`ATROPOS_INITIALIZATION`), MRF prior `ATROPOS_MRF` (smoothing 0.1 over
   the 26-neighbourhood, ``antsAtroposN4.sh``'s default), `ATROPOS_CONVERGENCE` (5 EM iterations,
   no early stop). Voxels take their maximum-posterior class.
4. *Class names*: the three classes sorted by the mean T1 over each:
   darkest = CSF (1), middle = grey matter (2), brightest = white matter (3); 0 outside the mask.

Atropos seeds its random number generator with a constant (`ATROPOS_USE_RANDOM_SEED` = 0) and
ITK runs with `THREADS` threads (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, set before ``ants`` is
imported unless already set): two runs then give the same labels.

2 mm from 1 mm
--------------
When every 2 mm voxel is centred on a 2 x 2 x 2 block of 1 mm voxels (`block_starts` checks
this from the two affines), the 2 mm T1 is the block mean rounded half up,
``(sum of the 8 values + 4) // 8`` (`block_mean_2`), and the 2 mm label is the block's plurality
label (`block_mode_2`): the label held by most of the 8 voxels; among tied labels, the one of the
first block voxel, in C order (``(di, dj, dk)`` = (0,0,0), (0,0,1), ..., (1,1,1)), that holds a
tied label. The tie rule favours no class. 1 mm voxels outside the source volume count as 0.

Only `brain_mask`, `n4` and `atropos_labels` need the recipe-only packages (``scipy``,
``antspyx``); they import them when called, so the block helpers run anywhere numpy does.
"""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = [
    "ATROPOS_CONVERGENCE",
    "ATROPOS_INITIALIZATION",
    "ATROPOS_MRF",
    "ATROPOS_USE_RANDOM_SEED",
    "BIAS_CORRECT",
    "N4_ITERATIONS",
    "N4_SHRINK_FACTOR",
    "N4_SPLINE_DISTANCE_MM",
    "N4_TOLERANCE",
    "RULE_VERSION",
    "THREADS",
    "atropos_labels",
    "block_mean_2",
    "block_mode_2",
    "block_starts",
    "brain_mask",
    "n4",
    "print_run",
    "procedure",
]

BIAS_CORRECT = False
N4_SHRINK_FACTOR = 4
N4_ITERATIONS = (50, 50, 50, 50)
N4_TOLERANCE = 1e-7
N4_SPLINE_DISTANCE_MM = 200
ATROPOS_INITIALIZATION = "KMeans[3]"
ATROPOS_MRF = "[0.1,1x1x1]"
ATROPOS_CONVERGENCE = "[5,0]"
# Atropos's -r/--use-random-seed: 0 seeds its random number generator with a constant (its
# default, 1, seeds it from the clock, and two runs then differ in ~0.1% of the voxels)
ATROPOS_USE_RANDOM_SEED = 0
THREADS = 2
# the label rule's version, stored in every npz made with it (1 was make_mni152_data's old
# rule: thresholds on the MNI152 probability maps)
RULE_VERSION = 2


def procedure() -> str:
    """One line naming the procedure and its parameters (for the recipes' reports and cards)."""
    bias = (
        f"N4 (shrink {N4_SHRINK_FACTOR}, iterations {'x'.join(map(str, N4_ITERATIONS))}, "
        f"tolerance {N4_TOLERANCE:g}, spline distance {N4_SPLINE_DISTANCE_MM} mm) inside the mask"
        if BIAS_CORRECT
        else "no bias correction"
    )
    return (
        f"brain mask = largest 6-connected component of t1 > 0, holes filled; {bias}; Atropos "
        f"{ATROPOS_INITIALIZATION}, MRF {ATROPOS_MRF}, convergence {ATROPOS_CONVERGENCE}, "
        f"use-random-seed {ATROPOS_USE_RANDOM_SEED}, Gaussian likelihood, inside the mask; "
        "classes ordered by mean T1 -> CSF/GM/WM"
    )


# ---------------------------------------------------------------------------- ANTs steps


def _ants():
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(THREADS))
    try:
        import ants
    except ImportError as err:
        raise SystemExit(
            "the tissue recipes need antspyx (a recipe-only dependency): "
            "python3 -m venv /work/recipe-venv && /work/recipe-venv/bin/pip install antspyx "
            "nibabel numpy scipy nilearn"
        ) from err
    return ants


def _voxel_sizes(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def _image(ants, array: np.ndarray, affine: np.ndarray):
    # N4 and Atropos use only the voxel spacing (N4's spline distance is in mm, the MRF
    # neighbourhood in voxels), not the orientation: identity direction, true spacing.
    return ants.from_numpy(
        np.ascontiguousarray(array, dtype=np.float32), spacing=_voxel_sizes(affine)
    )


def brain_mask(t1: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``t1 > 0``, holes filled (bool, ``t1.shape``)."""
    from scipy import ndimage

    comp, n = ndimage.label(t1 > 0)
    if n == 0:
        raise ValueError("brain_mask: the T1 is zero everywhere")
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(comp == int(np.argmax(sizes)))


def n4(t1: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(corrected, field)``, float32: N4 with the module's parameters inside ``mask``;
    ``corrected = t1 / field`` inside the mask, 0 outside (N4's own output divides likewise)."""
    ants = _ants()
    img, msk = _image(ants, t1, affine), _image(ants, mask.astype(np.float32), affine)
    kwargs = dict(
        mask=msk,
        shrink_factor=N4_SHRINK_FACTOR,
        convergence={"iters": list(N4_ITERATIONS), "tol": N4_TOLERANCE},
        spline_param=N4_SPLINE_DISTANCE_MM,
    )
    field = ants.n4_bias_field_correction(img, return_bias_field=True, **kwargs).numpy()
    field = field.astype(np.float32)
    return np.where(mask, t1 / field, 0).astype(np.float32), field


def atropos_labels(
    t1: np.ndarray, mask: np.ndarray, affine: np.ndarray, *, bias_correct: bool = BIAS_CORRECT
) -> dict:
    """Steps 2-4 of the module docstring on a 1 mm T1 and its brain mask (N4 first only with
    ``bias_correct=True``).

    Returns a dict: ``labels`` (uint8, ``t1.shape``: 0 outside ``mask``, 1 CSF, 2 GM, 3 WM),
    ``class_means`` (mean T1 of classes 1, 2, 3; with N4, of the corrected T1, on N4's scale),
    ``field_range`` (the 1st and 99th percentile inside the mask of the N4 field divided by its
    median there; (1, 1) without N4), ``seconds`` (``{"n4": ..., "atropos": ...}``, wall clock).
    """
    mask = np.asarray(mask, dtype=bool)
    t1 = np.asarray(t1, dtype=np.float32)
    t0 = time.perf_counter()
    if bias_correct:
        image, field = n4(t1, mask, affine)
        f = field[mask] / np.median(field[mask])  # N4's field has an arbitrary scale
        field_range = tuple(float(v) for v in np.percentile(f, [1, 99]))
    else:
        image, field_range = t1, (1.0, 1.0)
    t_n4 = time.perf_counter() - t0
    ants = _ants()
    t0 = time.perf_counter()
    seg = ants.atropos(
        a=_image(ants, image, affine),
        x=_image(ants, mask.astype(np.float32), affine),
        i=ATROPOS_INITIALIZATION,
        m=ATROPOS_MRF,
        c=ATROPOS_CONVERGENCE,
        r=ATROPOS_USE_RANDOM_SEED,
    )
    t_atropos = time.perf_counter() - t0
    raw = np.rint(seg["segmentation"].numpy()).astype(np.int64)
    if np.any(raw[~mask] != 0) or not np.all(np.isin(raw[mask], (1, 2, 3))):
        raise RuntimeError("atropos_labels: Atropos did not label exactly the mask with 1..3")
    means = np.array([image[raw == k].mean() for k in (1, 2, 3)])
    order = np.argsort(means)  # darkest -> CSF
    lut = np.zeros(4, np.uint8)
    lut[1 + order] = (1, 2, 3)
    return {
        "labels": lut[raw],
        "class_means": tuple(float(m) for m in means[order]),
        "field_range": field_range,
        "seconds": {"n4": t_n4, "atropos": t_atropos},
    }


def print_run(run: dict) -> None:
    """Print the timings, N4 field range and class means of an `atropos_labels` result."""
    s, (lo, hi) = run["seconds"], run["field_range"]
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "?")
    n4 = f"N4 {s['n4']:.1f} s (field / median, 1st-99th percentile {lo:.3f}..{hi:.3f}), "
    print(
        f"{n4 if BIAS_CORRECT else ''}Atropos {s['atropos']:.1f} s (wall clock, {threads} threads)"
    )
    print("class means (T1): " + ", ".join(f"{m:.1f}" for m in run["class_means"]))


# ---------------------------------------------------------------------------- 1 mm -> 2 mm


def block_starts(affine_1mm: np.ndarray, affine_2mm: np.ndarray) -> tuple[int, int, int]:
    """The 1 mm voxel index where 2 mm voxel (0, 0, 0)'s block starts, per axis.

    Raises ValueError unless 2 mm voxel ``i`` is centred on 1 mm voxels ``s + 2i`` and
    ``s + 2i + 1`` (same axes, twice the spacing, centres half a 1 mm voxel past an integer).
    """
    m = np.linalg.solve(np.asarray(affine_1mm, float), np.asarray(affine_2mm, float))
    lin, off = m[:3, :3], m[:3, 3]
    starts = off - 0.5
    if not (np.allclose(lin, 2 * np.eye(3)) and np.allclose(starts, np.rint(starts))):
        raise ValueError(
            "block_starts: the 2 mm grid is not made of 2 x 2 x 2 blocks of the 1 mm grid; "
            f"1 mm voxel coordinates of the 2 mm grid:\n{m}"
        )
    return tuple(int(s) for s in np.rint(starts))


def _blocks(vol: np.ndarray, starts, shape_2mm) -> np.ndarray:
    """``(nx, ny, nz, 8)``: each 2 mm voxel's eight 1 mm values in C order of (di, dj, dk);
    1 mm voxels outside ``vol`` are 0."""
    src, dst = [], []
    for s, n1, n2 in zip(starts, vol.shape, shape_2mm, strict=True):
        lo, hi = max(s, 0), min(s + 2 * n2, n1)  # the part of the block grid inside vol
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    full = np.zeros(tuple(2 * n for n in shape_2mm), vol.dtype)
    full[tuple(dst)] = vol[tuple(src)]
    nx, ny, nz = shape_2mm
    return full.reshape(nx, 2, ny, 2, nz, 2).transpose(0, 2, 4, 1, 3, 5).reshape(nx, ny, nz, 8)


def block_mean_2(vol: np.ndarray, starts=(0, 0, 0), shape_2mm=None) -> np.ndarray:
    """2 x 2 x 2 block means of a uint8 volume, rounded half up: ``(sum + 4) // 8``.

    ``starts`` as from `block_starts`; ``shape_2mm`` defaults to ``ceil(n / 2)`` per axis, i.e.
    odd axes padded with one zero at the end."""
    if shape_2mm is None:
        shape_2mm = tuple(-(-(n - s) // 2) for n, s in zip(vol.shape, starts, strict=True))
    s = _blocks(vol, starts, shape_2mm).astype(np.int32).sum(axis=-1)
    return ((s + 4) // 8).astype(np.uint8)


def block_mode_2(labels: np.ndarray, starts=(0, 0, 0), shape_2mm=None) -> np.ndarray:
    """The plurality label of each 2 x 2 x 2 block (uint8); ties go to the tied label of the
    block's first voxel (C order) that holds one. Same ``starts`` / ``shape_2mm`` as
    `block_mean_2`."""
    if shape_2mm is None:
        shape_2mm = tuple(-(-(n - s) // 2) for n, s in zip(labels.shape, starts, strict=True))
    b = _blocks(labels, starts, shape_2mm).astype(np.intp)
    k = int(b.max()) + 1
    counts = np.zeros((*b.shape[:3], k), np.int8)
    for c in range(k):
        counts[..., c] = (b == c).sum(axis=-1)
    tied = counts == counts.max(axis=-1, keepdims=True)
    holds_tied = np.take_along_axis(tied, b, axis=-1)  # (nx, ny, nz, 8)
    first = holds_tied.argmax(axis=-1)
    return np.take_along_axis(b, first[..., None], axis=-1)[..., 0].astype(np.uint8)

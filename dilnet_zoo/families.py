"""The zoo's network families: spec factories built from dilnet blocks.

Each factory takes keyword overrides (``num_classes``, ``channels``, ``in_channels``, …) and
returns a `dilnet.Sequential`. Receptive fields and parameter counts are those of the defaults
(checked by the test suite against `dilnet.build`).
"""

from dilnet import Sequential
from dilnet import blocks as B
from dilnet.blocks.stacks import CONTEXT_DILATIONS
from dilnet.model.contract import InputContract

__all__ = ["BRAIN_T1_2MM", "context3d", "dilated_resnet3d", "highres3dnet", "local3d", "plain3d"]

#: The input contract of every zoo network: a skull-stripped T1 brain, RAS, 2 mm voxels, its
#: nonzero voxels' 0.5th and 99.5th intensity percentiles scaled to 0 and 1. The recipe
#: (`dilnet_zoo.recipes.train`) scales its training volumes by it, as inference does.
BRAIN_T1_2MM = InputContract(
    orientation="RAS",
    voxel_size=(2.0, 2.0, 2.0),
    normalization="percentile",
    low=0.5,
    high=99.5,
    foreground="nonzero",
    class_names=("background", "csf", "grey matter", "white matter"),
)


def context3d(*, variant="basic", num_classes=4, channels=16, in_channels=1):
    """Yu & Koltun's context module in 3D behind a small front end.

    ``Conv(channels, 3³, batch norm)`` lifts the input channels; the context module (3³
    kernels, dilations 1, 1, 2, 4, 8, 16, 1, then 1³; 'large': widths 2C, 2C, 4C, 8C, 16C, 32C,
    32C, C) starts as the identity (Yu & Koltun's initialisation); a 1³ classifier with softmax
    ends it. Receptive field 3 + 66 = 69 voxels per axis.
    """
    return Sequential(
        [
            B.Input(channels=in_channels, spatial=(None, None, None)),
            B.Conv(filters=channels, kernel=3, batch_norm=True),
            B.ContextModule(channels=channels, variant=variant),
            B.Classifier(num_classes=num_classes),
        ]
    )


def local3d(*, num_classes=4, channels=16, in_channels=1):
    """A local tissue classifier: ``Conv(channels, 3³, batch norm)``, ``Conv(channels, 1³,
    batch norm)``, a 1³ classifier with softmax. Receptive field 3 voxels per axis: each voxel
    is classified from its own 3 x 3 x 3 neighbourhood, which is what the zoo's reference
    labels (an intensity-based classical segmenter) depend on, and all a network trained on one
    brain can learn without learning that brain's anatomy (docs/zoo.md)."""
    return Sequential(
        [
            B.Input(channels=in_channels, spatial=(None, None, None)),
            B.Conv(filters=channels, kernel=3, batch_norm=True),
            B.Conv(filters=channels, kernel=1, batch_norm=True),
            B.Classifier(num_classes=num_classes),
        ]
    )


def plain3d(*, num_classes=4, channels=16, in_channels=1):
    """`context3d` (basic) with every dilation 1: the same depth and parameter count, a
    receptive field of 3 + 14 = 17 voxels -- the baseline that shows what dilation buys."""
    return Sequential(
        [
            B.Input(channels=in_channels, spatial=(None, None, None)),
            B.Conv(filters=channels, kernel=3, batch_norm=True),
            B.ContextModule(channels=channels, dilations=(1,) * len(CONTEXT_DILATIONS)),
            B.Classifier(num_classes=num_classes),
        ]
    )


def _preactivation_block(channels, dilation):
    unit = [
        B.BatchNorm(),
        B.Activation(name="relu"),
        B.Conv(filters=channels, dilation=dilation, activation="linear"),
    ]
    return B.Residual(body=[*unit, *unit])


def highres3dnet(*, num_classes=4, in_channels=1):
    """HighRes3DNet (Li et al. 2017): a 3³ convolution to 16 channels, three stages of three
    pre-activation residual blocks (two 3³ convolutions each, BN -> ReLU -> conv) at 16
    channels / dilation 1, 32 / 2 and 64 / 4, a 1³ convolution to 80 channels, and a 1³
    classifier. Receptive field 87 voxels per axis. Where a stage widens the channels the
    shortcut is a 1³ projection (the paper pads the channels with zeros)."""
    blocks = [
        B.Input(channels=in_channels, spatial=(None, None, None)),
        B.Conv(filters=16, batch_norm=True),
    ]
    for channels, dilation in ((16, 1), (32, 2), (64, 4)):
        blocks += [_preactivation_block(channels, dilation) for _ in range(3)]
    blocks += [
        B.BatchNorm(),
        B.Activation(name="relu"),
        B.Conv(filters=80, kernel=1),
        B.Classifier(num_classes=num_classes),
    ]
    return Sequential(blocks)


def dilated_resnet3d(*, num_classes=4, channels=24, in_channels=1):
    """A dilated residual network in 3D: a 3³ front end, then residual units (conv -> BN ->
    + input -> ReLU) with dilations 1, 2, 4, 8, 4, 2, 1 -- growing then shrinking to smooth the
    gridding of large dilations (Yu et al. 2017's "degridding") -- and a classifier.
    Receptive field 3 + 2 * 22 = 47 voxels per axis."""
    return Sequential(
        [
            B.Input(channels=in_channels, spatial=(None, None, None)),
            B.Conv(filters=channels, batch_norm=True),
            B.DilatedStack(
                filters=channels, dilations=(1, 2, 4, 8, 4, 2, 1), residual=True, batch_norm=True
            ),
            B.Classifier(num_classes=num_classes),
        ]
    )

"""The compiler: layer graphs that compute what the blocks say, hand-computed receptive fields,
names, and build-time errors that name the block path."""

import attrs
import numpy as np
import pytensor
import pytest
from oracles import corr_reference
from pytensor.compile.mode import Mode

from dilnet import Sequential as Seq
from dilnet import ShapeError, SpecError, build
from dilnet import blocks as B
from dilnet import layers as L
from dilnet.blocks import Block, register_block
from dilnet.geometry import ReceptiveField

PY = Mode(linker="py", optimizer=None)  # compiles in milliseconds


def run(network, x, **kwargs):
    out = network.get_output(deterministic=True, **kwargs)
    return pytensor.function([network.input_layer.input_var], out, mode=PY)(x)


def rng(seed):
    return np.random.default_rng(seed)


def test_conv_same_padding_matches_the_plain_loop_oracle_for_even_kernels_and_strides():
    # 'same' (Keras rule): out = ceil(n / s), total pad max(0, (out-1)*s + extent - n), the
    # extra element after. Axis 0: n=7, k=4, d=2, s=2 -> extent 7, out 4, pad 6 -> (3, 3).
    # Axis 1: n=8, k=3, d=1, s=1 -> extent 3, pad (1, 1).
    net = build(
        Seq(
            [
                B.Input(channels=2, spatial=(None, None)),
                B.Conv(
                    filters=3, kernel=(4, 3), dilation=(2, 1), stride=(2, 1), activation="linear"
                ),
            ]
        )
    )
    conv = net.layer("blocks[1].conv")
    W = rng(0).normal(size=(3, 2, 4, 3))
    b = rng(1).normal(size=3)
    conv.W.set_value(W)
    conv.b.set_value(b)
    x = rng(2).normal(size=(2, 2, 7, 8))
    expected = corr_reference(x, W, (2, 1), (2, 1), [(3, 3), (1, 1)]) + b[None, :, None, None]
    np.testing.assert_allclose(run(net, x), expected, rtol=1e-12, atol=1e-12)
    assert [info.padding for info in net.layers if info.layer is conv] == [(None, (1, 1))]
    # with a known length the stride-2 'same' padding is resolved too
    known = build(net.spec, spatial=(7, 8))
    assert known.layers[1].padding == ((3, 3), (1, 1))


def test_conv_bn_activation_order_and_bias_default():
    net = build(Seq([B.Input(channels=1, spatial=(5,)), B.Conv(filters=2, batch_norm=True)]))
    kinds = [type(info.layer) for info in net.layers]
    assert kinds == [L.InputLayer, L.ConvLayer, L.BatchNormLayer, L.NonlinearityLayer]
    assert net.layer("blocks[1].conv").b is None  # batch norm's beta replaces the bias
    with_bias = build(
        Seq([B.Input(channels=1, spatial=(5,)), B.Conv(filters=2, batch_norm=True, bias=True)])
    )
    assert with_bias.layer("blocks[1].conv").b is not None


def test_parameter_names_follow_block_paths():
    net = build(
        Seq(
            [
                B.Input(channels=1),
                B.Residual(body=[B.Conv(filters=2), B.Conv(filters=2, batch_norm=True)]),
                B.DilatedStack(filters=2, dilations=(1, 2), residual=True),
            ]
        )
    )
    names = [p.name for p in net.get_params()]
    assert names == [
        "blocks[1].body[0].conv.W",
        "blocks[1].body[0].conv.b",
        "blocks[1].body[1].conv.W",
        "blocks[1].body[1].bn.beta",
        "blocks[1].body[1].bn.gamma",
        "blocks[1].body[1].bn.mean",
        "blocks[1].body[1].bn.inv_std",
        "blocks[1].projection.W",
        "blocks[2].conv0.W",
        "blocks[2].conv0.b",
        "blocks[2].conv1.W",
        "blocks[2].conv1.b",
    ]


def test_residual_adds_the_projected_shortcut():
    net = build(
        Seq(
            [
                B.Input(channels=2, spatial=(6,)),
                B.Residual(body=B.Conv(filters=3, activation="linear"), activation="tanh"),
            ]
        )
    )
    W = net.layer("blocks[1].body[0].conv").W.get_value()
    b = net.layer("blocks[1].body[0].conv").b.get_value()
    P = net.layer("blocks[1].projection").W.get_value()
    x = rng(3).normal(size=(1, 2, 6))
    body = corr_reference(x, W, (1,), (1,), [(1, 1)]) + b[None, :, None]
    shortcut = corr_reference(x, P, (1,), (1,), [(0, 0)])
    np.testing.assert_allclose(run(net, x), np.tanh(body + shortcut), rtol=1e-12)


def test_parallel_concatenates_or_sums_branches():
    spec = [B.Input(channels=1, spatial=(5, 5))]
    cat = build(Seq([*spec, B.Concat(branches=[B.Conv(filters=2), B.Conv(filters=3, kernel=1)])]))
    assert cat.output_shape == (None, 5, 5, 5)
    total = build(
        Seq(
            [
                *spec,
                B.Parallel(
                    branches=[B.Activation(name="linear"), B.Activation(name="tanh")], merge="sum"
                ),
            ]
        )
    )
    x = rng(4).normal(size=(1, 1, 5, 5))
    np.testing.assert_allclose(run(total, x), x + np.tanh(x), rtol=1e-12)


def test_identity_initialised_context_modules_pass_non_negative_input_through():
    # Yu & Koltun's identity initialisation: with ReLUs and non-negative input both the basic
    # and the large module compute the identity at initialisation.
    x = np.abs(rng(5).normal(size=(1, 2, 9, 8, 7)))
    for variant in ("basic", "large"):
        net = build(
            Seq(
                [
                    B.Input(channels=2),
                    B.ContextModule(channels=2, variant=variant, dilations=(1, 2, 4)),
                ]
            )
        )
        np.testing.assert_allclose(run(net, x), x, rtol=1e-12, atol=1e-12)
    large = build(Seq([B.Input(channels=2), B.ContextModule(channels=2, variant="large")]))
    widths = [i.layer.num_filters for i in large.layers if isinstance(i.layer, L.ConvLayer)]
    assert widths == [4, 4, 8, 16, 32, 64, 64, 2]


@pytest.mark.parametrize(
    "blocks, size, jump, start",
    [
        # Yu & Koltun: 3x3 layers with dilations 1,1,2,4,8,16,1 then 1x1 -> field 67
        ([B.ContextModule(channels=1)], 67, 1, -33),
        # 1 + 2 * (1 + 2 + 4 + 8) = 31
        ([B.DilatedStack(filters=1, dilations=(1, 2, 4, 8))], 31, 1, -15),
        # conv k3 s2 'valid' (size 3, jump 2), then conv k3: 3 + 2 * 2 = 7
        (
            [B.Conv(filters=1, stride=2, padding="valid"), B.Conv(filters=1, padding="valid")],
            7,
            2,
            0,
        ),
        # pool 2 (size 2, jump 2), conv k3 'same' (pad 1 -> start -2): 2 + 2 * 2 = 6
        ([B.Pool(size=2), B.Conv(filters=1)], 6, 2, -2),
        # a branch with a 5-wide kernel and one with 3 dilated by 3: union of [-2, 2] and [-3, 3]
        (
            [B.Concat(branches=[B.Conv(filters=1, kernel=5), B.Conv(filters=1, dilation=3)])],
            7,
            1,
            -3,
        ),
        # explicit asymmetric padding (0 before, 2 after) shifts the field right
        ([B.Conv(filters=1, padding=((0, 2),))], 3, 1, 0),
    ],
)
def test_receptive_fields_match_hand_computation(blocks, size, jump, start):
    net = build(Seq([B.Input(channels=1, spatial=(None,)), *blocks]))
    assert net.receptive_field == (ReceptiveField(size, jump, start),)


def test_receptive_field_per_block_and_layer():
    net = build(
        Seq(
            [
                B.Input(channels=1, spatial=(None, None)),
                B.Conv(filters=1, kernel=(3, 1)),
                B.DilatedConv(filters=1, dilation=(4, 1)),
            ]
        )
    )
    fields = {info.path: info.receptive_field for info in net.blocks}
    assert fields["blocks[1]"] == (ReceptiveField(3, 1, -1), ReceptiveField(1, 1, 0))
    assert fields["blocks[2]"] == (ReceptiveField(11, 1, -5), ReceptiveField(3, 1, -1))


def test_user_defined_blocks_compile_through_expand_and_round_trip():
    @register_block(name="test_compiler_ConvPair")
    @attrs.frozen(kw_only=True)
    class ConvPair(Block):
        filters: int = 2

        def expand(self):
            return [B.Conv(filters=self.filters), B.Conv(filters=self.filters, dilation=2)]

    spec = Seq([B.Input(channels=1, spatial=(None,)), ConvPair(filters=3)])
    net = build(spec)
    assert [p.name for p in net.get_params()] == [
        "blocks[1][0].conv.W",
        "blocks[1][0].conv.b",
        "blocks[1][1].conv.W",
        "blocks[1][1].conv.b",
    ]
    assert net.receptive_field[0].size == 7
    config = spec.to_config()
    assert config["spec"]["blocks"][1] == {"type": "test_compiler_ConvPair", "filters": 3}
    from dilnet import from_config

    assert from_config(config) == spec


def test_blocks_without_a_builder_or_expand_are_rejected_with_their_path():
    @register_block(name="test_compiler_Opaque")
    @attrs.frozen(kw_only=True)
    class Opaque(Block):
        pass

    with pytest.raises(
        SpecError,
        match=r"^blocks\[1\]: Opaque is not a built-in block and does "
        r"not define expand\(\)",
    ):
        build(Seq([B.Input(channels=1), Opaque()]))


@pytest.mark.parametrize(
    "blocks, error, message",
    [
        (
            [B.Sequential([B.Conv(filters=2), B.Conv(filters=2, kernel=(3, 3))])],
            SpecError,
            r"^blocks\[1\]\.blocks\[1\]\.kernel: expected an int or 3 ints \(one per spatial axis "
            r"of this 3D model\); received kernel=\(3, 3\)\.$",
        ),
        (
            [
                B.Residual(body=[B.DilatedStack(filters=1, dilations=(1, 16), residual=False)]),
                B.Conv(filters=1, dilation=16, padding="valid"),
            ],
            ShapeError,
            r"^blocks\[2\]\.dilation: a kernel of size 3 with dilation 16 spans 33 voxels, more "
            r"than the 20 voxels \(with padding='valid'\) along spatial axis 0",
        ),
        (
            [
                B.Residual(
                    body=[
                        B.DilatedStack(filters=1, dilations=(1, 2)),
                        B.DilatedStack(filters=1, dilations=(1, 32), kernel=(3, 3, 1)),
                    ]
                ),
                B.Conv(filters=1, padding="valid", dilation=(1, 1, 11)),
            ],
            ShapeError,
            r"^blocks\[2\]\.dilation: a kernel of size 3 with dilation 11 spans 23 voxels, more "
            r"than the 20 voxels",
        ),
        (
            [B.Residual(body=[B.Conv(filters=2, padding="valid")])],
            ShapeError,
            r"^blocks\[1\]\.body: expected|^blocks\[1\]\.body: a body that keeps the spatial size",
        ),
        (
            [B.Residual(body=B.Conv(filters=3), projection=False)],
            ShapeError,
            r"^blocks\[1\]\.projection: expected True or None when the body changes the channels "
            r"\(1 in, 3 out\); received projection=False\.$",
        ),
        (
            [B.Parallel(branches=[B.Conv(filters=1, stride=2), B.Conv(filters=1)])],
            ShapeError,
            r"^blocks\[1\]\.branches: branches with equal spatial output sizes; received spatial "
            r"shapes \[\(10, 10, 10\), \(20, 20, 20\)\]",
        ),
        (
            [B.Parallel(branches=[B.Conv(filters=1), B.Conv(filters=2)], merge="sum")],
            ShapeError,
            r"^blocks\[1\]\.branches: expected branches with equal channels for merge='sum'; "
            r"received channels=\[1, 2\]",
        ),
        (
            [B.ContextModule(channels=4)],
            ShapeError,
            r"^blocks\[1\]\.channels: the basic context module with init='identity' passes its "
            r"input through, so its input needs channels=4 channels; received an input with 1 "
            r"channels",
        ),
        (
            [B.Conv(filters=3, init="identity")],
            ShapeError,
            r"^blocks\[1\]\.init: init='identity' maps each input channel to itself",
        ),
        (
            [B.Conv(filters=1, kernel=2, init="identity")],
            SpecError,
            r"^blocks\[1\]\.init: expected odd kernel sizes",
        ),
        (
            [B.Pool(size=32)],
            ShapeError,
            r"^blocks\[1\]\.size: a pooling window of 32 voxels does not fit the 20 voxels",
        ),
        (
            [B.Conv(filters=1, padding=(1, 1))],
            SpecError,
            r"^blocks\[1\]\.padding: expected a mode, an int, or 3 entries",
        ),
        (
            [B.Sequential([B.Input(channels=1)])],
            SpecError,
            r"^blocks\[1\]\.blocks\[0\]: an Input block may only be the first block",
        ),
        (
            [B.Upsample(factor=(2, 2))],
            SpecError,
            r"^blocks\[1\]\.factor: expected an int or 3 ints",
        ),
    ],
)
def test_build_errors_name_the_block_path(blocks, error, message):
    with pytest.raises(error, match=message):
        build(Seq([B.Input(channels=1, spatial=(20, 20, 20)), *blocks]))


def test_pool_upsample_residuals_build_with_unknown_lengths_and_check_actual_sizes():
    # pool then upsample keeps lengths divisible by 2 only: it builds with unknown lengths
    # (probed at multiples of every small factor), and an actual odd size is refused by
    # check_size, naming the block
    spec = Seq([B.Input(channels=1, spatial=(None,)),
                B.Residual(body=[B.Pool(size=2), B.Upsample(factor=2)])])  # fmt: skip
    network = build(spec)
    assert network.check_size((96,)) == (None, 1, 96)
    with pytest.raises(
        ShapeError,
        match=r"^blocks\[1\] \(Residual\): the inputs of "
        r"blocks\[1\]\.add disagree for an input of spatial size \(97,\)",
    ):
        network.check_size((97,))
    with pytest.raises(
        ShapeError,
        match=r"^blocks\[1\]\.body: a body that keeps the spatial "
        r"size of its input .* received spatial shapes \[\(97,\), \(96,\)\]",
    ):
        build(spec, spatial=(97,))
    with pytest.raises(ShapeError, match=r"does not fit the Input block's \(None,\)"):
        network.check_size((4, 4))
    pooled = build(Seq([B.Input(channels=1, spatial=(None,)), B.Pool(size=4)]))
    with pytest.raises(
        ShapeError,
        match=r"^blocks\[1\] \(Pool\): layer blocks\[1\]\.pool "
        r"leaves no voxels",
    ):
        pooled.check_size((3,))


def test_model_must_start_with_input():
    with pytest.raises(SpecError, match=r"^blocks\[0\]: expected an Input block first"):
        build(Seq([B.Conv(filters=1)]))
    with pytest.raises(SpecError, match=r"build: expected 3 positive lengths"):
        build(Seq([B.Input(channels=1), B.Conv(filters=1)]), spatial=(4, 4))


def test_layer_errors_get_the_block_path_in_front():
    # a too-short input for a 'valid' classifier is caught by the compiler with the path
    with pytest.raises(ShapeError, match=r"^blocks\[1\]\.dilation: .* along spatial axis 1"):
        build(
            Seq(
                [
                    B.Input(channels=1, spatial=(9, 4)),
                    B.Conv(filters=1, dilation=(1, 3), padding="valid"),
                ]
            )
        )


def test_merged_fields_after_unknown_strided_padding_match_the_sized_build():
    # 'same' with stride 2 on an unknown length leaves the padding, and so the start, unknown;
    # both branches share that shift, so their union is still exact: [0, 2] and [-1, 1] -> 4
    # voxels at the strided grid (jump 2), size 1 + 3 * 2 = 7. (Found by the property tests.)
    spec = Seq([
        B.Input(channels=1, spatial=(None,)),
        B.Conv(filters=1, kernel=1, stride=2),
        B.Parallel(branches=[[B.Conv(filters=1, kernel=2), B.Conv(filters=1, kernel=2)],
                             B.Conv(filters=1, kernel=3)]),
    ])  # fmt: skip
    assert build(spec).receptive_field == (ReceptiveField(7, 2, None),)
    assert build(spec, spatial=(16,)).receptive_field == (ReceptiveField(7, 2, -2),)


def test_peak_activation_bytes_follows_liveness():
    # (1, 1, 4) -> conv to 2 channels -> conv to 3: live outputs 4, 4 + 8, 8 + 12 elements;
    # peak 20, plus the largest convolution input (8 elements, padded by the kernel): 28 * 8 B
    chain = build(Seq([B.Input(channels=1, spatial=(4,)), B.Conv(filters=2, activation="linear"),
                       B.Conv(filters=3, activation="linear")]))  # fmt: skip
    assert chain.peak_activation_bytes(batch_size=1, itemsize=8) == 28 * 8
    assert chain.activation_bytes(batch_size=1, itemsize=8) == 20 * 8  # all outputs, no input
    # a residual keeps its input alive across the body: at the second conv the input, the
    # first conv's output and the second's are live (12 elements), plus a padded input (4)
    residual = build(Seq([B.Input(channels=1, spatial=(4,)),
                          B.Residual(body=[B.Conv(filters=1, activation="linear"),
                                           B.Conv(filters=1, activation="linear")])]))  # fmt: skip
    assert residual.peak_activation_bytes(batch_size=1, itemsize=8) == 16 * 8
    assert build(Seq([B.Input(channels=1), B.Conv(filters=1)])).peak_activation_bytes() is None

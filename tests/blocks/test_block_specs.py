"""Blocks are frozen keyword-only attrs specs, validated when made; the registry of types."""

import attrs
import pytest

from dilnet import Sequential, SpecError
from dilnet import blocks as B
from dilnet.blocks import Block, register_block, registered_blocks


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: B.Conv(filters=0),
            r"^Conv: invalid value for `filters`. Expected a positive int <= 1,048,576; received filters=0.$",
        ),
        (
            lambda: B.Conv(filters=2.0),
            r"`filters`. Expected a positive int <= 1,048,576; received filters=2.0",
        ),
        (
            lambda: B.Conv(filters=True),
            r"`filters`. Expected a positive int <= 1,048,576; received filters=True",
        ),
        (
            lambda: B.Conv(filters=4, kernel=(3, 0, 3)),
            r"`kernel`. Expected a positive int or a tuple of positive ints, each <= 1,048,576; "
            r"received "
            r"kernel=\(3, 0, 3\)",
        ),
        (
            lambda: B.Conv(filters=4, activation="rellu"),
            r"`activation`. Expected one of 'linear', .* \(did you mean 'relu'.*received "
            r"activation='rellu'",
        ),
        (lambda: B.Conv(filters=4, padding="sam"), r"did you mean 'same'\?"),
        (lambda: B.Conv(filters=4, padding=-1), r"`padding`.*received padding=-1"),
        (lambda: B.Conv(filters=4, padding=((1, 2, 3),)), r"`padding`"),
        (lambda: B.Conv(filters=4, batch_norm="yes"), r"`batch_norm`. Expected True or False"),
        (lambda: B.Conv(filters=4, bias=1), r"`bias`. Expected True, False or None"),
        (lambda: B.Conv(filters=4, init="xavier"), r"`init`. Expected one of 'glorot_uniform'"),
        (
            lambda: B.DilatedStack(filters=8, dilations=(1, 0, 4)),
            r"^DilatedStack: invalid value for `dilations`. Expected a non-empty sequence of "
            r"positive ints, each <= 1,048,576; received dilations=\(1, 0, 4\).$",
        ),
        # bounded: beyond 2**20 the padding arithmetic and memory estimates stop meaning anything
        (
            lambda: B.Conv(filters=4, dilation=10**30),
            r"`dilation`. Expected a positive int or a tuple of positive ints, each <= "
            r"1,048,576; received dilation=1000000000000000000000000000000",
        ),
        (lambda: B.Conv(filters=10**12), r"`filters`. Expected a positive int <= 1,048,576"),
        (lambda: B.Conv(filters=2**20 + 1), r"received filters=1048577"),
        (
            lambda: B.Input(channels=1, spatial=(10**7, 4, 4)),
            r"`spatial`. Expected 1 to 3 spatial lengths, each a positive int <= 1,048,576 or None",
        ),
        (lambda: B.DilatedStack(filters=8, dilations=()), r"`dilations`"),
        (
            lambda: B.DilatedStack(filters=8, dilations=(1,), dropout=1.0),
            r"`dropout`. Expected a "
            r"probability in \[0, 1\)",
        ),
        (
            lambda: B.ContextModule(channels=4, variant="huge"),
            r"`variant`. Expected one of "
            r"'basic', 'large'",
        ),
        (
            lambda: B.ContextModule(channels=4, kernel=4),
            r"`kernel`. Expected odd sizes for init='identity'",
        ),
        (
            lambda: B.ContextModule(channels=4, variant="large", dilations=(1,) * 8),
            r"`dilations`. Expected at most 7 entries for variant='large'",
        ),
        (lambda: B.Input(channels=1, spatial=(None,) * 4), r"`spatial`. Expected 1 to 3"),
        (lambda: B.Input(channels=1, spatial=(0, 4)), r"`spatial`"),
        (lambda: B.Pool(mode="min"), r"`mode`. Expected one of 'max', 'average'"),
        (lambda: B.Pool(stride=0), r"`stride`"),
        (lambda: B.Dropout(rate=-0.1), r"`rate`. Expected a probability"),
        (lambda: B.BatchNorm(epsilon=0), r"`epsilon`. Expected a positive number"),
        (lambda: B.Activation(name="gelu"), r"`name`. Expected one of"),
        (
            lambda: B.Classifier(num_classes=3, activation="relu"),
            r"`activation`. Expected one of "
            r"'softmax', 'sigmoid', 'linear'",
        ),
        (lambda: B.Residual(body=[]), r"`body`. Expected a non-empty sequence of blocks"),
        (lambda: B.Residual(body=[B.Conv(filters=1), "conv"]), r"received body='conv'"),
        (lambda: B.Parallel(branches=[B.Conv(filters=1)]), r"`branches`. Expected at least two"),
        (lambda: B.Parallel(branches=[B.Conv(filters=1), []]), r"branch 1"),
        (lambda: B.Parallel(branches=[B.Conv(filters=1)] * 2, merge="add"), r"`merge`"),
        (lambda: Sequential([]), r"`blocks`. Expected a non-empty sequence of blocks"),
        (lambda: Sequential([B.Conv(filters=1), 3]), r"received blocks=3"),
    ],
)
def test_invalid_fields_raise_spec_error_naming_block_and_field(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        B.Conv(filters=-1)


def test_blocks_are_frozen_keyword_only_and_compare_by_value():
    conv = B.Conv(filters=4, kernel=[3, 3, 1])
    assert conv.kernel == (3, 3, 1)  # lists from JSON or users become tuples
    assert conv == B.Conv(filters=4, kernel=(3, 3, 1))
    assert hash(conv) == hash(B.Conv(filters=4, kernel=(3, 3, 1)))
    assert conv != B.Conv(filters=4, kernel=(3, 3, 1), dilation=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        conv.filters = 8
    with pytest.raises(TypeError):
        B.Conv(4)  # keyword-only
    assert attrs.evolve(conv, filters=8).filters == 8


def test_containers_normalise_their_children():
    conv = B.Conv(filters=2)
    assert B.Residual(body=conv).body == (conv,)
    assert B.Parallel(branches=[conv, [conv, conv]]).branches == ((conv,), (conv, conv))
    assert Sequential([conv]) == Sequential(blocks=(conv,))
    assert B.Input(channels=1, spatial=[4, None]).spatial == (4, None)
    assert B.Conv(filters=1, padding=[[1, 2], 0]).padding == ((1, 2), 0)


def test_builtin_blocks_are_registered_by_class_name():
    registry = registered_blocks()
    for name in (
        "Input",
        "Conv",
        "DilatedConv",
        "DilatedStack",
        "ContextModule",
        "Residual",
        "Parallel",
        "Concat",
        "BatchNorm",
        "Activation",
        "Dropout",
        "Pool",
        "Upsample",
        "Classifier",
        "Sequential",
    ):
        assert registry[name] is getattr(B, name)
        assert B.block_type(getattr(B, name)) == name


def test_register_block_rejects_duplicates_and_non_blocks():
    with pytest.raises(SpecError, match=r"a block type named 'Conv' is already registered"):

        @register_block
        @attrs.frozen(kw_only=True)
        class Conv(Block):
            filters: int = 1

    with pytest.raises(SpecError, match=r"Expected an attrs class deriving from Block"):

        @register_block
        class NotAttrs(Block):
            pass

    @attrs.frozen(kw_only=True)
    class Unregistered(Block):
        pass

    with pytest.raises(SpecError, match=r"Unregistered is not a registered block type"):
        B.block_type(Unregistered)


@pytest.mark.parametrize("dtype, itemsize", [("float32", 4), ("float64", 8)])
def test_summary_counts_activation_memory_in_the_model_dtype(dtype, itemsize):
    spec = Sequential([B.Input(channels=1, spatial=(None, None, None)), B.Conv(filters=4)])
    text = spec.summary(input_size=(8, 8, 8), print_fn=None, dtype=dtype)
    # two layer outputs (the conv and its ReLU), each 4 x 8^3 values
    expected = 2 * 4 * 8**3 * itemsize
    assert f"{expected / 1024:.2f} KiB for a batch of 1 at 8x8x8 ({dtype}" in text
    assert spec.summary(input_size=(8, 8, 8), print_fn=None) == spec.summary(
        input_size=(8, 8, 8), print_fn=None, dtype="float32"
    )

"""`EmbeddingLayer` against an explicit row lookup."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from common import FAST

from dilnet import layers as L
from dilnet.errors import ConfigError


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 2, 3)])
def test_embedding_looks_up_rows(shape):
    W = np.arange(15.0).reshape(5, 3) ** 1.5
    inp = L.InputLayer(
        (None, *shape[1:]), input_var=pt.tensor("i", dtype="int32", shape=(None,) * len(shape))
    )
    layer = L.EmbeddingLayer(inp, input_size=5, output_size=3, W=W)
    assert layer.output_shape == (None, *shape[1:], 3)
    indices = np.random.default_rng(len(shape)).integers(0, 5, shape).astype("int32")
    want = np.zeros((*shape, 3))
    for index in np.ndindex(*shape):
        for k in range(3):
            want[(*index, k)] = W[indices[index], k]
    got = pytensor.function([inp.input_var], L.get_output(layer), mode=FAST)(indices)
    np.testing.assert_allclose(got, want)
    assert L.get_all_params(layer) == [layer.W]


def test_embedding_sizes_must_be_positive():
    with pytest.raises(ConfigError, match=r"`output_size`\. Expected a positive int"):
        L.EmbeddingLayer((None, 3), input_size=4, output_size=0)

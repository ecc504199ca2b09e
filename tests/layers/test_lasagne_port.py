"""Lasagne code ported by changing imports (`import lasagne` -> `import dilnet as lasagne`,
`theano` -> `pytensor`), in the style of Lasagne's MNIST example, learns its task.

The one line beyond imports is Theano's default compile mode, C VM (``mode="CVM"``): PyTensor's
own default, Numba, took 107 s for this training function's first call on a fresh cache
(bench/port_modes.py, docs/benchmarks.md).
"""

import numpy as np
import pytensor


def test_lasagne_style_mnist_example_runs_after_changing_imports():
    with pytensor.config.change_flags(mode="CVM"):
        _ported_example()


def _ported_example():
    # --- as in Lasagne's examples/mnist.py, imports changed --------------------------------
    import pytensor as theano
    import pytensor.tensor as T

    import dilnet as lasagne

    lasagne.random.set_rng(np.random.RandomState(42))

    def build_cnn(input_var=None):
        network = lasagne.layers.InputLayer(shape=(None, 1, 12, 12), input_var=input_var)
        network = lasagne.layers.Conv2DLayer(
            network,
            num_filters=8,
            filter_size=(3, 3),
            nonlinearity=lasagne.nonlinearities.rectify,
            W=lasagne.init.GlorotUniform(),
        )
        network = lasagne.layers.MaxPool2DLayer(network, pool_size=(2, 2))
        network = lasagne.layers.DenseLayer(
            lasagne.layers.dropout(network, p=0.2),
            num_units=16,
            nonlinearity=lasagne.nonlinearities.rectify,
        )
        network = lasagne.layers.DenseLayer(
            network, num_units=2, nonlinearity=lasagne.nonlinearities.softmax
        )
        return network

    input_var = T.tensor4("inputs")
    target_var = T.ivector("targets")
    network = build_cnn(input_var)
    prediction = lasagne.layers.get_output(network)
    loss = lasagne.objectives.categorical_crossentropy(prediction, target_var)
    loss = loss.mean()
    params = lasagne.layers.get_all_params(network, trainable=True)
    updates = lasagne.updates.nesterov_momentum(loss, params, learning_rate=0.05, momentum=0.9)
    test_prediction = lasagne.layers.get_output(network, deterministic=True)
    test_loss = lasagne.objectives.categorical_crossentropy(test_prediction, target_var).mean()
    test_acc = T.mean(
        T.eq(T.argmax(test_prediction, axis=1), target_var), dtype=theano.config.floatX
    )
    train_fn = theano.function([input_var, target_var], loss, updates=updates)
    val_fn = theano.function([input_var, target_var], [test_loss, test_acc])
    # --- end of the ported code --------------------------------------------------------------

    # task: is the bright bar vertical (0) or horizontal (1)?
    rng = np.random.default_rng(0)

    def batch(n):
        x = rng.normal(0, 0.1, (n, 1, 12, 12)).astype(theano.config.floatX)
        y = rng.integers(0, 2, n).astype("int32")
        for i in range(n):
            a, b = rng.integers(1, 11, 2)
            if y[i]:
                x[i, 0, a, max(b - 3, 0) : b + 3] += 1
            else:
                x[i, 0, max(a - 3, 0) : a + 3, b] += 1
        return x, y

    first = float(train_fn(*batch(32)))
    for _ in range(60):
        last = float(train_fn(*batch(32)))
    val_loss, val_acc = val_fn(*batch(200))
    assert last < 0.5 * first, (first, last)
    assert val_acc > 0.9, val_acc
    assert val_loss < 0.4

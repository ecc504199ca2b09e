"""Recurrent layers (Lasagne's ``lasagne.layers.recurrent``) on ``pytensor.scan``.

The input is ``(batch, time, features...)``; a layer runs a step function over the time axis and
returns its hidden state after every step, ``(batch, time, units...)`` (or only the last one,
``only_return_final=True``). `CustomRecurrentLayer` takes any input-to-hidden and
hidden-to-hidden layer graphs (dense, convolutional, ...); `RecurrentLayer` is it with a
`DenseLayer` for each; `LSTMLayer` and `GRULayer` are gated, each gate's parameters given as a
`Gate`.
Trailing feature axes are flattened by all but `CustomRecurrentLayer`.

Shared by all four (Lasagne's names and defaults):

- ``mask_input``: a layer giving a ``(batch, time)`` mask; where it is 0 the state is carried
  over unchanged (padded steps of shorter sequences), in general
  ``state = mask * new + (1 - mask) * previous``.
- ``hid_init`` / ``cell_init``: the initial state as an initializer or array (a parameter of
  shape ``(1, units...)`` repeated over the batch, learned when ``learn_init=True``), a shared
  variable or expression, or a `Layer` whose output, ``(batch, units...)``, is used as is (the
  layer joins the graph: `get_all_layers` lists it).
- ``backwards``: run from the last step to the first; the output is reversed back so that
  ``output[:, t]`` is still the state at input step ``t``.
- ``gradient_steps``: truncate back-propagation to this many steps (-1: all).
- ``grad_clipping``: clip the gradient flowing into each step's pre-activations to
  ``[-grad_clipping, grad_clipping]`` (0 or False: no clipping).
- ``unroll_scan``: build the loop as a Python loop (`dilnet.utils.unroll_scan`) instead of a
  ``Scan``; needs a known sequence length and ``gradient_steps=-1``.
- ``precompute_input``: apply the input weights to all steps at once before the loop.
- ``only_return_final``: return only the state after the last step, ``(batch, units...)``.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad_clip
from pytensor.graph.replace import graph_replace
from pytensor.scalar import upcast

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int, unroll_scan
from . import helper
from .base import (
    Layer,
    MergeLayer,
    _has_output_shape,
    add_state_update,
    collect_state_updates,
    describe,
    nonlinearity_or_identity,
)
from .dense import DenseLayer
from .input import InputLayer

__all__ = ["CustomRecurrentLayer", "GRULayer", "Gate", "LSTMLayer", "RecurrentLayer"]


def _is_layer(spec) -> bool:
    # as for `incoming`: a Layer, or anything else with an output_shape (arrays have `shape`)
    return isinstance(spec, Layer) or _has_output_shape(spec)


class _RecurrentBase(MergeLayer):
    """What the four layers share: incomings (input, mask, initial-state layers), the loop
    settings, the initial states, running the loop and arranging its output."""

    def __init__(
        self,
        incoming,
        mask_input,
        states,
        *,
        backwards,
        learn_init,
        gradient_steps,
        grad_clipping,
        unroll_scan,
        precompute_input,
        only_return_final,
        **kwargs,
    ):
        incomings = [incoming]
        self.mask_incoming_index = -1
        if mask_input is not None:
            incomings.append(mask_input)
            self.mask_incoming_index = len(incomings) - 1
        for state, spec in states:  # an initial state given as a layer is one more incoming
            setattr(self, f"{state}_incoming_index", -1)
            if _is_layer(spec):
                incomings.append(spec)
                setattr(self, f"{state}_incoming_index", len(incomings) - 1)
        super().__init__(incomings, **kwargs)
        where = describe(self)
        for flag, value in (
            ("backwards", backwards),
            ("learn_init", learn_init),
            ("unroll_scan", unroll_scan),
            ("precompute_input", precompute_input),
            ("only_return_final", only_return_final),
        ):
            if not isinstance(value, bool | np.bool_):
                raise ConfigError(invalid(where, flag, "True or False", value))
        if not is_int(gradient_steps) or not (gradient_steps == -1 or gradient_steps > 0):
            raise ConfigError(
                invalid(where, "gradient_steps", "-1 (all steps) or a positive int", gradient_steps)
            )
        if grad_clipping is False or grad_clipping is None:
            grad_clipping = 0
        if (
            isinstance(grad_clipping, bool)
            or not isinstance(grad_clipping, int | float | np.number)
            or not grad_clipping >= 0
        ):
            raise ConfigError(
                invalid(where, "grad_clipping", "0/False (off) or a positive number", grad_clipping)
            )
        if unroll_scan and gradient_steps != -1:
            raise ConfigError(
                invalid(where, "gradient_steps", "-1 when unroll_scan=True", gradient_steps)
            )
        input_shape = self.input_shapes[0]
        if len(input_shape) < 3:
            raise ShapeError(
                invalid(where, "input shape", "(batch, time, features...)", input_shape)
            )
        if unroll_scan and input_shape[1] is None:
            raise ShapeError(
                invalid(
                    where,
                    "input shape",
                    "a known sequence length (axis 1) when unroll_scan=True",
                    input_shape,
                )
            )
        if mask_input is not None:
            mask_shape = self.input_shapes[self.mask_incoming_index]
            if len(mask_shape) != 2 or any(
                m is not None and s is not None and m != s
                for m, s in zip(mask_shape, input_shape[:2], strict=False)
            ):
                raise ShapeError(
                    invalid(
                        where,
                        "mask_input.output_shape",
                        f"(batch, time) matching the input's {input_shape[:2]}",
                        mask_shape,
                    )
                )
        self.backwards = bool(backwards)
        self.learn_init = bool(learn_init)
        self.gradient_steps = int(gradient_steps)
        self.grad_clipping = grad_clipping
        self.unroll_scan = bool(unroll_scan)
        self.precompute_input = bool(precompute_input)
        self.only_return_final = bool(only_return_final)

    def _add_state(self, state, spec, shape):
        """``self.<state>``: the layer giving it, or a parameter of `shape` ``(1, units...)``."""
        if getattr(self, f"{state}_incoming_index") > 0:
            got = spec.output_shape
            if len(got) != len(shape) or any(
                g is not None and s is not None and g != s
                for g, s in zip(got[1:], shape[1:], strict=True)
            ):
                raise ShapeError(
                    invalid(
                        describe(self),
                        f"{state}.output_shape",
                        f"(batch, {', '.join(map(str, shape[1:]))})",
                        got,
                    )
                )
            return spec
        return self.add_param(
            spec, shape, name=state, trainable=self.learn_init, regularizable=False
        )

    def _split_inputs(self, inputs):
        """(input, mask or None, {state: expression from a layer})."""
        mask = inputs[self.mask_incoming_index] if self.mask_incoming_index > 0 else None
        given = {
            state: inputs[getattr(self, f"{state}_incoming_index")]
            for state in self._state_names
            if getattr(self, f"{state}_incoming_index") > 0
        }
        return inputs[0], mask, given

    def _initial(self, state, given, num_batch):
        """The initial value of `state`, ``(batch, units...)``."""
        if state in given:
            return given[state]
        param = getattr(self, state)
        # a (1, units...) parameter repeated over the batch
        tail = [s if s is not None else param.shape[i + 1] for i, s in enumerate(self._tail)]
        return pt.alloc(param, num_batch, *tail)

    def _run(self, step, sequences, mask, initial, non_sequences):
        """Run `step` over axis 0 of `sequences` from `initial`; one (time, batch, ...) array per
        state, in processing order (reversed for ``backwards``).

        A step that draws random numbers (a dropout layer inside a `CustomRecurrentLayer`'s
        graphs) advances its generator from step to step: each generator is one more state of
        the loop, and its last value becomes the generator's state update."""
        dtype = upcast(*(v.dtype for v in (*sequences, *initial, *non_sequences)))
        initial = [pt.cast(v, dtype) for v in initial]
        n, k = len(initial), len(sequences)
        generators = self._step_generators(step, sequences, initial, non_sequences)
        m = len(generators)

        def fn(*args):
            if mask is None:
                slices, rest = args[:k], args[k:]
            else:
                slices, mask_n, rest = args[:k], args[k], args[k + 1 :]
            previous, drawn, constants = rest[:n], rest[n : n + m], rest[n + m :]
            new = step(*slices, *previous, *constants)
            # the state keeps the initial state's type (dtype, static shape) from step to step
            new = [
                p.type.filter_variable(pt.cast(v, p.dtype), allow_convert=True)
                for v, p in zip(new, previous, strict=True)
            ]
            if m:
                updates = collect_state_updates(new)
                advanced = [updates[g] for g in generators]
                swap = dict(zip(generators, drawn, strict=True))
                replaced = graph_replace([*new, *advanced], swap, strict=False)
                new, advanced = replaced[:n], replaced[n:]
            else:
                advanced = []
            if mask is not None:  # a masked step carries the previous state over
                new = [v * mask_n + p * (1 - mask_n) for v, p in zip(new, previous, strict=True)]
            return [*new, *advanced]

        seqs = list(sequences)
        if mask is not None:
            seqs.append(pt.cast(mask, dtype).dimshuffle(1, 0, *(["x"] * (initial[0].ndim - 1))))
        start = [*initial, *generators]
        if self.unroll_scan:
            out = unroll_scan(
                fn, seqs, start, non_sequences, self.input_shapes[0][1], self.backwards
            )
        else:
            out = pytensor.scan(
                fn,
                sequences=seqs,
                outputs_info=start,
                non_sequences=non_sequences,
                go_backwards=self.backwards,
                truncate_gradient=self.gradient_steps,
                return_list=True,
                return_updates=False,
            )
        states, last = out[:n], out[n:]
        for state in states:  # whichever state the layer returns carries the updates
            for generator, value in zip(generators, last, strict=True):
                add_state_update(state, generator, value)
        return states

    def _step_generators(self, step, sequences, initial, non_sequences):
        """The shared random generators `step` draws from (none for the gated layers)."""
        if not self._step_may_draw:
            return []
        # one step built on stand-ins, so the updates found are the step's own, not those of
        # the graphs that computed its inputs
        probe = step(
            *(s[0].type() for s in sequences),
            *(v.type() for v in initial),
            *non_sequences,
        )
        return list(collect_state_updates(probe))

    def _arrange(self, out):
        """(time, batch, ...) in processing order -> the layer's output."""
        if self.only_return_final:
            return out[-1]
        out = out.dimshuffle(1, 0, *range(2, out.ndim))
        return out[:, ::-1] if self.backwards else out

    _step_may_draw = False

    def _clip(self, x):
        return grad_clip(x, -self.grad_clipping, self.grad_clipping) if self.grad_clipping else x

    def get_output_shape_for(self, input_shapes):
        input_shape = input_shapes[0]
        if self.only_return_final:
            return (input_shape[0], *self._tail)
        return (input_shape[0], input_shape[1], *self._tail)


class CustomRecurrentLayer(_RecurrentBase):
    """A recurrent layer with any input-to-hidden and hidden-to-hidden connections:
    ``h_t = nonlinearity(f_i(x_t) + f_h(h_{t-1}))``.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, time, features...)``.
    input_to_hidden : Layer
        :math:`f_i`: a layer graph ending in one `InputLayer` of shape ``(None, features...)``
        (with ``precompute_input`` it sees all ``batch * time`` steps as one batch).
    hidden_to_hidden : Layer
        :math:`f_h`: a layer graph ending in one `InputLayer`, mapping the hidden state
        ``(batch, units...)`` to itself; its output shape after the first axis is the state's.
    nonlinearity : callable or None
        Applied to the sum; None: identity.
    hid_init : initializer, array, shared variable, expression or Layer
        Initial state (see the module notes); a parameter has shape ``(1, units...)``.
    backwards, learn_init, gradient_steps, grad_clipping, unroll_scan, precompute_input, \
mask_input, only_return_final
        As described in the module notes.
    **kwargs
        ``name``.

    Notes
    -----
    Output shape ``(batch, time) + hidden_to_hidden.output_shape[1:]``, or ``(batch,) +
    hidden_to_hidden.output_shape[1:]`` with ``only_return_final``. The parameters of both
    connection graphs are this layer's (`get_params`), but their layers are not in
    `get_all_layers`. Keyword arguments of `get_output` (e.g. ``deterministic``) are passed on
    to both graphs.

    Raises
    ------
    ConfigError
        A connection graph without exactly one `InputLayer`, a bad flag, ``gradient_steps !=
        -1`` with ``unroll_scan``.
    ShapeError
        The two graphs' shapes do not fit each other or the input (each a ValueError, as in
        Lasagne).
    """

    _state_names = ("hid_init",)
    _step_may_draw = True  # its graphs may hold dropout or noise layers

    def __init__(
        self,
        incoming,
        input_to_hidden,
        hidden_to_hidden,
        nonlinearity=nonlinearities.rectify,
        hid_init=init.Constant(0.0),
        backwards=False,
        learn_init=False,
        gradient_steps=-1,
        grad_clipping=0,
        unroll_scan=False,
        precompute_input=True,
        mask_input=None,
        only_return_final=False,
        **kwargs,
    ):
        super().__init__(
            incoming,
            mask_input,
            [("hid_init", hid_init)],
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
            **kwargs,
        )
        where = describe(self)
        entry = {}  # each graph's one InputLayer
        for label, graph in (
            ("input_to_hidden", input_to_hidden),
            ("hidden_to_hidden", hidden_to_hidden),
        ):
            if not isinstance(graph, Layer):
                raise ConfigError(invalid(where, label, "a Layer", graph))
            inputs = [x for x in helper.get_all_layers(graph) if isinstance(x, InputLayer)]
            if len(inputs) != 1:
                raise ConfigError(
                    invalid(
                        where,
                        label,
                        "a layer graph with exactly one InputLayer",
                        f"a graph with {len(inputs)} InputLayers",
                    )
                )
            entry[label] = inputs[0]
        self.input_to_hidden, self.hidden_to_hidden = input_to_hidden, hidden_to_hidden
        in_shape = self.input_shapes[0]
        i2h, h2h = input_to_hidden.output_shape, hidden_to_hidden.output_shape

        def mismatch(a, b):
            return any(
                x is not None and y is not None and x != y for x, y in zip(a, b, strict=False)
            )

        steps = None if None in in_shape[:2] else in_shape[0] * in_shape[1]
        if self.precompute_input and mismatch(i2h[:1], (steps,)):
            raise ShapeError(
                invalid(
                    where,
                    "input_to_hidden.output_shape[0]",
                    f"None or batch * time = {steps} (precompute_input=True)",
                    i2h[0],
                )
            )
        if not self.precompute_input and mismatch(i2h[:1], h2h[:1]):
            raise ShapeError(
                invalid(
                    where,
                    "input_to_hidden.output_shape[0]",
                    f"hidden_to_hidden.output_shape[0] = {h2h[0]} (precompute_input=False)",
                    i2h[0],
                )
            )
        if len(i2h) != len(h2h) or mismatch(i2h[1:], h2h[1:]):
            raise ShapeError(
                invalid(
                    where,
                    "input_to_hidden.output_shape",
                    f"hidden_to_hidden.output_shape = {h2h} after the first axis",
                    i2h,
                )
            )
        h2h_in = entry["hidden_to_hidden"].output_shape
        if len(i2h) != len(h2h_in) or mismatch(i2h[1:], h2h_in[1:]):
            raise ShapeError(
                invalid(
                    where,
                    "input_to_hidden.output_shape",
                    f"the shape of hidden_to_hidden's InputLayer, {h2h_in}, after the first axis",
                    i2h,
                )
            )
        self._tail = tuple(h2h[1:])
        self.nonlinearity = nonlinearity_or_identity(where, nonlinearity)
        if not _is_layer(hid_init) and None in self._tail:
            raise ShapeError(
                invalid(
                    where,
                    "hidden_to_hidden.output_shape",
                    "known lengths after the first axis (for a hid_init parameter)",
                    h2h,
                )
            )
        self.hid_init = self._add_state("hid_init", hid_init, (1, *self._tail))
        # get_output accepts the keyword arguments of the layers inside, which receive them
        self.get_output_kwargs = sorted(
            {
                name
                for graph in (input_to_hidden, hidden_to_hidden)
                for layer in helper.get_all_layers(graph)
                if not isinstance(layer, InputLayer)
                for name in helper._accepted_kwargs(layer)
            }
        )

    def get_params(self, unwrap_shared=True, **tags):
        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        for graph in (self.input_to_hidden, self.hidden_to_hidden):
            params += helper.get_all_params(graph, unwrap_shared=unwrap_shared, **tags)
        return list(dict.fromkeys(params))

    def get_output_for(self, inputs, **kwargs):
        """Hidden states ``(batch, time, units...)`` for `inputs` = [input, mask?, hid_init?]."""
        input, mask, given = self._split_inputs(inputs)
        input = input.dimshuffle(1, 0, *range(2, input.ndim))  # time first, for the loop
        seq_len, num_batch = input.shape[0], input.shape[1]
        if self.precompute_input:
            flat = pt.reshape(
                input, (seq_len * num_batch, *(input.shape[i] for i in range(2, input.ndim)))
            )
            out = helper._propagate(self.input_to_hidden, flat, kwargs)[0]
            input = pt.reshape(
                out, (seq_len, num_batch, *(out.shape[i] for i in range(1, out.ndim)))
            )
        non_sequences = helper.get_all_params(self.hidden_to_hidden)
        if not self.precompute_input:
            non_sequences += helper.get_all_params(self.input_to_hidden)

        def step(input_n, hid_previous, *args):
            hid_pre = helper._propagate(self.hidden_to_hidden, hid_previous, kwargs)[0]
            if self.precompute_input:
                hid_pre = hid_pre + input_n
            else:
                hid_pre = hid_pre + helper._propagate(self.input_to_hidden, input_n, kwargs)[0]
            return [self.nonlinearity(self._clip(hid_pre))]

        hid_init = self._initial("hid_init", given, num_batch)
        (hid,) = self._run(step, [input], mask, [hid_init], non_sequences)
        return self._arrange(hid)


class RecurrentLayer(CustomRecurrentLayer):
    """A dense ("vanilla") RNN: ``h_t = nonlinearity(x_t W_in_to_hid + h_{t-1} W_hid_to_hid + b)``.

    `CustomRecurrentLayer` with a `DenseLayer` for each connection (named
    ``"<name>.input_to_hidden"`` and ``"<name>.hidden_to_hidden"``); their parameters are
    ``W_in_to_hid`` (num_inputs, num_units), ``W_hid_to_hid`` (num_units, num_units) and ``b``
    (num_units,), where num_inputs is the product of the input's feature axes.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, time, features...)``.
    num_units : int
    W_in_to_hid, W_hid_to_hid : initializer, array or shared variable
    b : initializer, array, shared variable or None
    nonlinearity : callable or None
    hid_init, backwards, learn_init, gradient_steps, grad_clipping, unroll_scan, \
precompute_input, mask_input, only_return_final
        As for `CustomRecurrentLayer`.

    Notes
    -----
    Output shape ``(batch, time, num_units)``, or ``(batch, num_units)`` with
    ``only_return_final``.
    """

    def __init__(
        self,
        incoming,
        num_units,
        W_in_to_hid=init.Uniform(),
        W_hid_to_hid=init.Uniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        hid_init=init.Constant(0.0),
        backwards=False,
        learn_init=False,
        gradient_steps=-1,
        grad_clipping=0,
        unroll_scan=False,
        precompute_input=True,
        mask_input=None,
        only_return_final=False,
        **kwargs,
    ):
        input_shape = incoming if isinstance(incoming, tuple) else incoming.output_shape
        name = kwargs.get("name")
        prefix = f"{name}." if name else ""
        layer_kwargs = {k: v for k, v in kwargs.items() if k != "name"}
        if len(input_shape) < 3:
            raise ShapeError(
                invalid("RecurrentLayer", "input shape", "(batch, time, features...)", input_shape)
            )
        in_to_hid = DenseLayer(
            InputLayer((None, *input_shape[2:])),
            num_units,
            W=W_in_to_hid,
            b=b,
            nonlinearity=None,
            name=prefix + "input_to_hidden",
            **layer_kwargs,
        )
        hid_to_hid = DenseLayer(
            InputLayer((None, in_to_hid.num_units)),
            num_units,
            W=W_hid_to_hid,
            b=None,
            nonlinearity=None,
            name=prefix + "hidden_to_hidden",
            **layer_kwargs,
        )
        self.W_in_to_hid, self.W_hid_to_hid, self.b = in_to_hid.W, hid_to_hid.W, in_to_hid.b
        super().__init__(
            incoming,
            in_to_hid,
            hid_to_hid,
            nonlinearity=nonlinearity,
            hid_init=hid_init,
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            mask_input=mask_input,
            only_return_final=only_return_final,
            **kwargs,
        )
        self.num_units = in_to_hid.num_units


class Gate:
    """The parameters of one gate of an `LSTMLayer` or `GRULayer`:
    ``nonlinearity(x_t W_in + h_{t-1} W_hid [+ c W_cell] + b)``.

    Parameters
    ----------
    W_in : initializer, array or shared variable
        Input-to-gate weights, (num_inputs, num_units).
    W_hid : initializer, array or shared variable
        Hidden-to-gate weights, (num_units, num_units).
    W_cell : initializer, array, shared variable or None
        Cell-to-gate (peephole) weights, (num_units,); None: the gate has none.
    b : initializer, array or shared variable
        Bias, (num_units,).
    nonlinearity : callable or None
        None: identity.

    Examples
    --------
    An LSTM whose forget gate is biased to remember at first:
    ``LSTMLayer(incoming, 10, forgetgate=Gate(b=dilnet.init.Constant(5.0)))``.
    """

    def __init__(
        self,
        W_in=init.Normal(0.1),
        W_hid=init.Normal(0.1),
        W_cell=init.Normal(0.1),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.sigmoid,
    ):
        self.W_in, self.W_hid, self.W_cell, self.b = W_in, W_hid, W_cell, b
        self.nonlinearity = nonlinearity_or_identity("Gate", nonlinearity)

    def __repr__(self):
        return (
            f"Gate(W_in={self.W_in!r}, W_hid={self.W_hid!r}, W_cell={self.W_cell!r}, "
            f"b={self.b!r}, nonlinearity={self.nonlinearity!r})"
        )


class _GatedBase(_RecurrentBase):
    """LSTM and GRU: num_units, the gates' parameters, the stacked weights."""

    def _setup(self, num_units):
        where = describe(self)
        if not is_int(num_units) or num_units < 1:
            raise ConfigError(invalid(where, "num_units", "a positive int", num_units))
        features = self.input_shapes[0][2:]
        if None in features:
            raise ShapeError(
                invalid(
                    where, "input shape", "known feature lengths (axes 2...)", self.input_shapes[0]
                )
            )
        self.num_units = int(num_units)
        self._num_inputs = int(np.prod(features))
        self._tail = (self.num_units,)

    def _add_gate(self, gate, name):
        # any object with a Gate's attributes will do, as in Lasagne
        if not all(hasattr(gate, a) for a in ("W_in", "W_hid", "b", "nonlinearity")):
            raise ConfigError(invalid(describe(self), name, "a Gate", gate))
        n, u = self._num_inputs, self.num_units
        setattr(self, f"W_in_to_{name}", self.add_param(gate.W_in, (n, u), name=f"W_in_to_{name}"))
        setattr(
            self, f"W_hid_to_{name}", self.add_param(gate.W_hid, (u, u), name=f"W_hid_to_{name}")
        )
        setattr(
            self, f"b_{name}", self.add_param(gate.b, (u,), name=f"b_{name}", regularizable=False)
        )

    def _stacked(self, names):
        """(W_in, W_hid, b) of the gates `names`, side by side: one product per step."""
        return (
            pt.concatenate([getattr(self, f"W_in_to_{g}") for g in names], axis=1),
            pt.concatenate([getattr(self, f"W_hid_to_{g}") for g in names], axis=1),
            pt.concatenate([getattr(self, f"b_{g}") for g in names], axis=0),
        )

    def _slice(self, x, k):
        return x[:, k * self.num_units : (k + 1) * self.num_units]

    def _time_major(self, input):
        if input.ndim > 3:
            input = pt.flatten(input, 3)
        return input.dimshuffle(1, 0, 2)


class LSTMLayer(_GatedBase):
    r"""A long short-term memory layer with a forget gate and optional peephole connections.

    .. math::

        i_t &= \sigma_i(x_t W_{xi} + h_{t-1} W_{hi} + w_{ci} \odot c_{t-1} + b_i) \\
        f_t &= \sigma_f(x_t W_{xf} + h_{t-1} W_{hf} + w_{cf} \odot c_{t-1} + b_f) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot \sigma_c(x_t W_{xc} + h_{t-1} W_{hc} + b_c) \\
        o_t &= \sigma_o(x_t W_{xo} + h_{t-1} W_{ho} + w_{co} \odot c_t + b_o) \\
        h_t &= o_t \odot \sigma_h(c_t)

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, time, features...)`` (feature axes flattened).
    num_units : int
    ingate, forgetgate, cell, outgate : Gate
        Parameters of :math:`i, f, c, o`; the defaults are ``Gate()`` and, for the cell,
        ``Gate(W_cell=None, nonlinearity=tanh)``. Parameters are named ``W_in_to_ingate``,
        ``W_hid_to_ingate``, ``b_ingate``, ``W_cell_to_ingate``, ... (attributes of the layer).
    nonlinearity : callable or None
        :math:`\sigma_h`; None: identity.
    cell_init, hid_init : initializer, array, shared variable, expression or Layer
        Initial cell and hidden state (see the module notes).
    peepholes : bool
        Use the :math:`w_c` (cell-to-gate) weights of the input, forget and output gates.
    backwards, learn_init, gradient_steps, grad_clipping, unroll_scan, precompute_input, \
mask_input, only_return_final
        As described in the module notes; ``grad_clipping`` clips the gates' pre-activations.

    Notes
    -----
    Output shape ``(batch, time, num_units)`` (the hidden state), or ``(batch, num_units)``
    with ``only_return_final``.
    """

    _state_names = ("hid_init", "cell_init")

    def __init__(
        self,
        incoming,
        num_units,
        ingate=Gate(),
        forgetgate=Gate(),
        cell=Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
        outgate=Gate(),
        nonlinearity=nonlinearities.tanh,
        cell_init=init.Constant(0.0),
        hid_init=init.Constant(0.0),
        backwards=False,
        learn_init=False,
        peepholes=True,
        gradient_steps=-1,
        grad_clipping=0,
        unroll_scan=False,
        precompute_input=True,
        mask_input=None,
        only_return_final=False,
        **kwargs,
    ):
        super().__init__(
            incoming,
            mask_input,
            [("hid_init", hid_init), ("cell_init", cell_init)],
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
            **kwargs,
        )
        self._setup(num_units)
        if not isinstance(peepholes, bool | np.bool_):
            raise ConfigError(invalid(describe(self), "peepholes", "True or False", peepholes))
        self.peepholes = bool(peepholes)
        self.nonlinearity = nonlinearity_or_identity(describe(self), nonlinearity)
        gates = (
            ("ingate", ingate),
            ("forgetgate", forgetgate),
            ("cell", cell),
            ("outgate", outgate),
        )
        for name, gate in gates:
            self._add_gate(gate, name)
            setattr(self, f"nonlinearity_{name}", gate.nonlinearity or nonlinearities.identity)
        if self.peepholes:
            for name, gate in (
                ("ingate", ingate),
                ("forgetgate", forgetgate),
                ("outgate", outgate),
            ):
                if getattr(gate, "W_cell", None) is None:
                    raise ConfigError(
                        invalid(
                            describe(self),
                            f"{name}.W_cell",
                            "an initializer, array or shared variable (peepholes=True)",
                            None,
                        )
                    )
                setattr(
                    self,
                    f"W_cell_to_{name}",
                    self.add_param(gate.W_cell, (self.num_units,), name=f"W_cell_to_{name}"),
                )
        self.cell_init = self._add_state("cell_init", cell_init, (1, self.num_units))
        self.hid_init = self._add_state("hid_init", hid_init, (1, self.num_units))

    def get_output_for(self, inputs, **kwargs):
        """Hidden states ``(batch, time, num_units)`` for `inputs` = [input, mask?, hid_init?,
        cell_init?]."""
        input, mask, given = self._split_inputs(inputs)
        input = self._time_major(input)
        num_batch = input.shape[1]
        W_in, W_hid, b = self._stacked(("ingate", "forgetgate", "cell", "outgate"))
        if self.precompute_input:
            input = pt.dot(input, W_in) + b
        non_sequences = [W_hid]
        if self.peepholes:
            non_sequences += [
                self.W_cell_to_ingate,
                self.W_cell_to_forgetgate,
                self.W_cell_to_outgate,
            ]
        if not self.precompute_input:
            non_sequences += [W_in, b]

        def step(input_n, cell_previous, hid_previous, *args):
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            gates = self._clip(input_n + pt.dot(hid_previous, W_hid))
            ingate, forgetgate, cell_input, outgate = (self._slice(gates, k) for k in range(4))
            if self.peepholes:
                ingate = ingate + cell_previous * self.W_cell_to_ingate
                forgetgate = forgetgate + cell_previous * self.W_cell_to_forgetgate
            ingate = self.nonlinearity_ingate(ingate)
            forgetgate = self.nonlinearity_forgetgate(forgetgate)
            cell_input = self.nonlinearity_cell(cell_input)
            cell = forgetgate * cell_previous + ingate * cell_input
            if self.peepholes:
                outgate = outgate + cell * self.W_cell_to_outgate
            hid = self.nonlinearity_outgate(outgate) * self.nonlinearity(cell)
            return [cell, hid]

        initial = [self._initial(s, given, num_batch) for s in ("cell_init", "hid_init")]
        _, hid = self._run(step, [input], mask, initial, non_sequences)
        return self._arrange(hid)


class GRULayer(_GatedBase):
    r"""A gated recurrent unit layer (Cho et al. 2014).

    .. math::

        r_t &= \sigma_r(x_t W_{xr} + h_{t-1} W_{hr} + b_r) \\
        u_t &= \sigma_u(x_t W_{xu} + h_{t-1} W_{hu} + b_u) \\
        c_t &= \sigma_c(x_t W_{xc} + r_t \odot (h_{t-1} W_{hc}) + b_c) \\
        h_t &= (1 - u_t) \odot h_{t-1} + u_t \odot c_t

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, time, features...)`` (feature axes flattened).
    num_units : int
    resetgate, updategate, hidden_update : Gate
        Parameters of :math:`r, u, c` (``W_cell`` is not used); the defaults are
        ``Gate(W_cell=None)`` and, for the hidden update, ``Gate(W_cell=None,
        nonlinearity=tanh)``. Parameters are named ``W_in_to_updategate``, ...,
        ``b_hidden_update`` (attributes of the layer).
    hid_init : initializer, array, shared variable, expression or Layer
        Initial hidden state (see the module notes).
    learn_init : bool
        Default True here (as in Lasagne): a `hid_init` parameter is trained.
    backwards, gradient_steps, grad_clipping, unroll_scan, precompute_input, mask_input, \
only_return_final
        As described in the module notes.

    Notes
    -----
    Output shape ``(batch, time, num_units)``, or ``(batch, num_units)`` with
    ``only_return_final``.
    """

    _state_names = ("hid_init",)

    def __init__(
        self,
        incoming,
        num_units,
        resetgate=Gate(W_cell=None),
        updategate=Gate(W_cell=None),
        hidden_update=Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
        hid_init=init.Constant(0.0),
        backwards=False,
        learn_init=True,
        gradient_steps=-1,
        grad_clipping=0,
        unroll_scan=False,
        precompute_input=True,
        mask_input=None,
        only_return_final=False,
        **kwargs,
    ):
        super().__init__(
            incoming,
            mask_input,
            [("hid_init", hid_init)],
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
            **kwargs,
        )
        self._setup(num_units)
        self._add_gate(updategate, "updategate")
        self._add_gate(resetgate, "resetgate")
        self._add_gate(hidden_update, "hidden_update")
        self.nonlinearity_updategate = updategate.nonlinearity or nonlinearities.identity
        self.nonlinearity_resetgate = resetgate.nonlinearity or nonlinearities.identity
        self.nonlinearity_hid = hidden_update.nonlinearity or nonlinearities.identity
        self.hid_init = self._add_state("hid_init", hid_init, (1, self.num_units))

    def get_output_for(self, inputs, **kwargs):
        """Hidden states ``(batch, time, num_units)`` for `inputs` = [input, mask?,
        hid_init?]."""
        input, mask, given = self._split_inputs(inputs)
        input = self._time_major(input)
        num_batch = input.shape[1]
        W_in, W_hid, b = self._stacked(("resetgate", "updategate", "hidden_update"))
        if self.precompute_input:
            input = pt.dot(input, W_in) + b
        non_sequences = [W_hid] if self.precompute_input else [W_hid, W_in, b]

        def step(input_n, hid_previous, *args):
            hid_input = self._clip(pt.dot(hid_previous, W_hid))
            input_n = self._clip(input_n)
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            resetgate = self.nonlinearity_resetgate(
                self._slice(hid_input, 0) + self._slice(input_n, 0)
            )
            updategate = self.nonlinearity_updategate(
                self._slice(hid_input, 1) + self._slice(input_n, 1)
            )
            update = self._clip(self._slice(input_n, 2) + resetgate * self._slice(hid_input, 2))
            update = self.nonlinearity_hid(update)
            return [(1 - updategate) * hid_previous + updategate * update]

        initial = [self._initial("hid_init", given, num_batch)]
        (hid,) = self._run(step, [input], mask, initial, non_sequences)
        return self._arrange(hid)

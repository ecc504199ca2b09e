"""State updates that travel with expressions: batch-norm running averages, dropout RNGs.

PyTensor 3 deprecates ``default_update``, the mechanism Lasagne relied on, in favour of explicit
``updates=`` in `pytensor.function`. So a layer tags its output with the updates it needs
(`add_state_update`), `collect_state_updates` finds them in any expression's graph, and every
rule in `dilnet.updates` adds the ones in its loss's graph to the updates it returns, so
Lasagne-style training code keeps working unchanged.
"""

from collections import OrderedDict

import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

__all__ = ["add_state_update", "collect_state_updates"]

_TAG = "dilnet_state_updates"


def add_state_update(output, variable, new_value):
    """Record that computing `output` should also set shared `variable` to `new_value`.

    Returns `output`.
    """
    pending = getattr(output.tag, _TAG, None)
    if pending is None:
        pending = []
        setattr(output.tag, _TAG, pending)
    pending.append((variable, new_value))
    return output


def collect_state_updates(expressions):
    """All pending state updates in the graphs of `expressions` (an ordered dict).

    Pass them, merged with the optimizer's updates, to ``pytensor.function(updates=...)`` when
    training without `dilnet.updates`; the rules there merge them themselves.
    """
    if isinstance(expressions, Variable):
        expressions = [expressions]
    found = OrderedDict()
    for var in ancestors([pt.as_tensor_variable(e) for e in expressions]):
        for variable, new_value in getattr(var.tag, _TAG, ()):
            found.setdefault(variable, new_value)
    return found

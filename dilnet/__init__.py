"""dilnet: dilated volumetric networks on PyTensor.

The Lasagne module names are here too, so ``import dilnet as lasagne`` ports Lasagne code:
`dilnet.layers` (with `dilnet.layers.dnn`, Lasagne's cuDNN layer names), `dilnet.init`,
`dilnet.nonlinearities`, `dilnet.objectives`, `dilnet.updates`, `dilnet.regularization`,
`dilnet.random`, `dilnet.utils`, `dilnet.theano_extensions`.

Models are written as specs: ``Sequential([...])`` of `dilnet.blocks`, compiled by
`dilnet.build` (`dilnet.compiler`) into that layer graph, saved with `to_config` and read back
with `from_config`.
"""

from . import blocks as blocks
from . import compiler as compiler
from . import errors as errors
from . import init as init
from . import layers as layers
from . import modes as modes
from . import nonlinearities as nonlinearities
from . import objectives as objectives
from . import random as random
from . import regularization as regularization
from . import shapes as shapes
from . import theano_extensions as theano_extensions
from . import updates as updates
from ._version import __version__ as __version__
from .backends.select import get_cpu_kernels as get_cpu_kernels
from .backends.select import set_cpu_kernels as set_cpu_kernels
from .blocks import Sequential as Sequential
from .blocks.config import from_config as from_config
from .blocks.config import to_config as to_config
from .compiler import build as build
from .errors import (
    BackendError as BackendError,
)
from .errors import (
    ConfigError as ConfigError,
)
from .errors import (
    DilnetError as DilnetError,
)
from .errors import (
    ShapeError as ShapeError,
)
from .errors import (
    SpecError as SpecError,
)
from .errors import (
    VolumeError as VolumeError,
)
from .errors import (
    WeightsError as WeightsError,
)
from .io.summary import format_summary as format_summary
from .ops import dilated_conv as dilated_conv

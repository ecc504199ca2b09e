"""dilnet: dilated volumetric networks on PyTensor."""

from . import errors as errors
from . import shapes as shapes
from .backends.select import get_cpu_kernels as get_cpu_kernels
from .backends.select import set_cpu_kernels as set_cpu_kernels
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
from .ops import dilated_conv as dilated_conv

__version__ = "0.1.0.dev0"

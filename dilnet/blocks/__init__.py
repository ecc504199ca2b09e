"""Declarative blocks: frozen attrs specs whose fields are a model's whole configuration.

``from dilnet import Sequential, blocks as B`` and compose: `Input` first, then any blocks;
`dilnet.compiler.build` turns the spec into a layer graph. Single-purpose blocks are in
`dilnet.blocks.layers`, blocks made of blocks in `dilnet.blocks.stacks`, the registry and the
validators in `dilnet.blocks.base`.
"""

from .base import ACTIVATIONS as ACTIVATIONS
from .base import INITS as INITS
from .base import PADDING_MODES as PADDING_MODES
from .base import Block as Block
from .base import block_type as block_type
from .base import register_block as register_block
from .base import registered_blocks as registered_blocks
from .layers import Activation as Activation
from .layers import BatchNorm as BatchNorm
from .layers import Classifier as Classifier
from .layers import Conv as Conv
from .layers import DilatedConv as DilatedConv
from .layers import Dropout as Dropout
from .layers import Input as Input
from .layers import Pool as Pool
from .layers import Upsample as Upsample
from .stacks import Concat as Concat
from .stacks import ContextModule as ContextModule
from .stacks import DilatedStack as DilatedStack
from .stacks import Parallel as Parallel
from .stacks import Residual as Residual
from .stacks import Sequential as Sequential

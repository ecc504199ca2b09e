"""Declarative blocks: frozen attrs specs whose fields are a model's whole configuration.

``from dilnet import Sequential, blocks as B`` and compose: `Input` first, then any blocks;
`dilnet.compiler.build` turns the spec into a layer graph. Single-purpose blocks are in
`dilnet.blocks.basic`, blocks made of blocks in `dilnet.blocks.stacks`, the registry and the
validators in `dilnet.blocks.base`, configs (JSON-able dicts, read back without `eval`) in
`dilnet.blocks.config`.
"""

from . import config as config
from .base import ACTIVATIONS as ACTIVATIONS
from .base import INITS as INITS
from .base import PADDING_MODES as PADDING_MODES
from .base import Block as Block
from .base import block_type as block_type
from .base import register_block as register_block
from .base import registered_blocks as registered_blocks
from .basic import Activation as Activation
from .basic import BatchNorm as BatchNorm
from .basic import Classifier as Classifier
from .basic import Conv as Conv
from .basic import DilatedConv as DilatedConv
from .basic import Dropout as Dropout
from .basic import Input as Input
from .basic import Pool as Pool
from .basic import Upsample as Upsample
from .config import from_config as from_config
from .config import to_config as to_config
from .stacks import Concat as Concat
from .stacks import ContextModule as ContextModule
from .stacks import DilatedStack as DilatedStack
from .stacks import Parallel as Parallel
from .stacks import Residual as Residual
from .stacks import Sequential as Sequential

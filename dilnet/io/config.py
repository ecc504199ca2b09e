"""Model configs (JSON-able dicts) for specs: `dilnet.blocks.config`, importable from here too."""

from ..blocks.config import FORMAT as FORMAT
from ..blocks.config import FORMAT_VERSION as FORMAT_VERSION
from ..blocks.config import converter as converter
from ..blocks.config import from_config as from_config
from ..blocks.config import to_config as to_config

__all__ = ["FORMAT", "FORMAT_VERSION", "converter", "from_config", "to_config"]

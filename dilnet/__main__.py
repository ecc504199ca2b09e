"""``python -m dilnet``: the ``dilnet`` command (`dilnet.cli`)."""

import sys

from .cli import main

sys.exit(main())

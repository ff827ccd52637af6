"""``python -m deepforest_lite.cli`` runs the ``deepforest-lite`` command."""

import sys

from . import main

sys.exit(main())

"""``python -m deepforest_lite.cli`` runs the ``deepforest-lite`` command."""

import sys

from . import main

if __name__ == "__main__":  # importing this module (e.g. pkgutil.walk_packages) must not run the command
    sys.exit(main())

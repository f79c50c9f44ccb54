"""``python -m infersight``: the same as the ``infersight`` command."""

import sys

from infersight.cli import main

sys.exit(main())

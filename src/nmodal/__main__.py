"""``python -m nmodal ...`` runs the ``nmodal`` command."""

import sys

from nmodal.cli import main

sys.exit(main())

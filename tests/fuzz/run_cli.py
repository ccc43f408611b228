"""``python tests/fuzz/run_cli.py ARGS``: the nmodal CLI with the tests' fake encoder set."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    tests = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(tests), str(tests.parent)]
    from features import fake_encoders  # noqa: F401  (registers the "fake" encoder set)
    from nmodal.cli import main

    sys.exit(main(sys.argv[1:]))

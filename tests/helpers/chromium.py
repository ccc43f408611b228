"""Debian's Chromium for the browser tests: where it is and how to start it here.

The flags keep a headless Chromium from reaching for Google's services, which this
machine's closed network refuses; Playwright is pointed at the system binary and never
downloads a browser of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING_REASON = "chromium is not installed (scripts/setup.sh installs Debian's chromium)"

#!/usr/bin/env bash
# One-time, idempotent set-up for a fresh machine: system packages (when root), a virtual
# environment in .venv with the CPU build of torch, and nmodal with all its extras.
# Called by `make demo` and `make test`; re-runs only when pyproject.toml or
# constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
stamp_src=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.setup-$stamp_src"
if [ -f "$stamp" ]; then
    exit 0
fi

# System packages: an emoji font and espeak-ng for the demo corpus, Chromium for the
# browser tests and the report screenshot, and fonts for the scripts posts are written in
# (headless Chromium and matplotlib draw boxes for characters no installed font has):
# DejaVu for Latin, Cyrillic, Greek and Arabic, Noto CJK for Chinese, Japanese and Korean
# (fonts-noto-cjk: 57 MB download, 91 MB installed). Without root they are skipped (the
# demo falls back to procedural assets and the browser tests skip themselves).
APT_PACKAGES="fonts-noto-color-emoji fonts-dejavu-core fonts-noto-cjk espeak-ng chromium"
missing=""
for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "[setup] installing system packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "[setup] warning: not root, skipping system packages:$missing" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "[setup] installing torch (CPU wheel) and nmodal[dev]"
"$VENV/bin/python" -m pip install -q -c constraints.txt torch
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
rm -f "$VENV"/.setup-*
touch "$stamp"
echo "[setup] done"

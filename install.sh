#!/usr/bin/env bash
# Installs gimsfm into ./.venv on a Debian/Ubuntu machine: system libraries, CPU torch first (a bare
# `torch` would pull a multi-GB CUDA build), then the package. `--dev` adds the test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
DEBS="libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0"
missing=$(for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing python3-venv >/dev/null
fi
# --dev only: headless Chromium for the viewer's browser test (tests/test_viewer_browser.py).
if [ "${1:-}" = "--dev" ] && ! dpkg -s chromium-driver >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
[ -x .venv/bin/python ] || $PY -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}"
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/pip install -q -e ".[dev]"
else
  .venv/bin/pip install -q -e .
fi
echo "gimsfm installed in $(pwd)/.venv"

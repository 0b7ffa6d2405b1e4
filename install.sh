#!/usr/bin/env bash
# Installs gimsfm into ./.venv on a Debian/Ubuntu machine: system libraries, torch first, then the package.
# Usage: ./install.sh [--dev] [--cpu | --cuda]      (--dev adds the test tools; idempotent)
# torch (TORCH_VERSION, default 2.13.0):
#   --cuda  PyPI's Linux wheel, the CUDA build (about 2.7 GB with its nvidia-* wheels).
#   --cpu   the CPU build from PyTorch's CPU index (a 190 MB wheel) when it answers within 5 s, else the
#           default index (PyPI gives the CUDA build there, unless pip is configured with a CPU wheel).
#   neither: --cuda when an NVIDIA driver is present (nvidia-smi or /proc/driver/nvidia), else --cpu.
set -euo pipefail
cd "$(dirname "$0")"
DEV=0; TORCH_BUILD=auto
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --cpu) TORCH_BUILD=cpu ;;
    --cuda) TORCH_BUILD=cuda ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --dev, --cpu, --cuda)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
DEBS="libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0"
missing=$(for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing python3-venv >/dev/null
fi
# --dev only: headless Chromium for the viewer's browser test (tests/test_viewer_browser.py).
if [ "$DEV" = 1 ] && ! dpkg -s chromium-driver >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
[ -x .venv/bin/python ] || $PY -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

# -- torch first, so the package's open `torch` range takes the chosen build instead of pulling its own
TORCH_SPEC="torch==${TORCH_VERSION:-2.13.0}"
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
want=$TORCH_BUILD
if [ "$want" = auto ]; then
  want=cpu
  { command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia/version ]; } && want=cuda
fi
have=$(.venv/bin/python -c "import torch; print('cuda' if torch.version.cuda else 'cpu')" 2>/dev/null || echo none)
# install when there is none; switch builds only on an explicit --cpu / --cuda
if [ "$have" = none ] || { [ "$TORCH_BUILD" != auto ] && [ "$have" != "$want" ]; }; then
  torch_args=("$TORCH_SPEC")
  if [ "$want" = cpu ]; then
    if .venv/bin/python -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=5)" \
         "$TORCH_CPU_INDEX/torch/" >/dev/null 2>&1; then
      torch_args+=(--index-url "$TORCH_CPU_INDEX")
    else
      echo "install.sh: $TORCH_CPU_INDEX unreachable: torch from the default index (from PyPI: the CUDA build)" >&2
      want=default
    fi
  fi
  if [ "$have" = none ]; then
    .venv/bin/pip install -q "${torch_args[@]}"
  elif [ "$want" != default ]; then
    .venv/bin/pip uninstall -q -y torch
    .venv/bin/pip install -q "${torch_args[@]}"
  fi
fi

if [ "$DEV" = 1 ]; then
  .venv/bin/pip install -q -e ".[dev]"
else
  .venv/bin/pip install -q -e .
fi
echo "gimsfm installed in $(pwd)/.venv with $(.venv/bin/python -c "import torch as t
print(f'torch {t.__version__}, ' + (f'the CUDA {t.version.cuda} build' if t.version.cuda else 'the CPU build'))")"

#!/usr/bin/env bash
# One setup path for a fresh machine, CPU or CUDA:
#   1. system tools: espeak-ng (demo corpus) and ffmpeg (non-WAV audio), installed when possible;
#   2. .venv/ at the repo root;
#   3. torch: the CUDA build on NVIDIA machines, the CPU build otherwise (a local wheel if pip's
#      find-links has one, else the PyTorch CPU index), never a multi-GB CUDA build on a CPU box;
#   4. every other dependency from requirements/lock.txt (exact pins), then mmemo in editable mode.
# Idempotent: rerunning only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements/base.txt)
# Debian package -> a file it installs (how we tell it is there).
declare -A SYSTEM_PACKAGES=(
  [espeak-ng]=/usr/bin/espeak-ng                     # the demo corpus
  [ffmpeg]=/usr/bin/ffmpeg                           # MP4/M4A/... audio; whisper.load_audio
  [pocketsphinx-testdata]=/usr/share/pocketsphinx/test/data/librivox/transcription  # real speech for tests
)

# pip prints a warning per package for find-links/index folders that do not exist on some
# machines; drop those lines but keep pip's exit status.
quiet() { "$@" 2>&1 | { grep -v "WARNING: Location" || true; }; return "${PIPESTATUS[0]}"; }
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
# shellcheck source=scripts/apt_install.sh
source scripts/apt_install.sh

# -- 1. system packages -----------------------------------------------------------------------
missing=()
for package in "${!SYSTEM_PACKAGES[@]}"; do
  [ -e "${SYSTEM_PACKAGES[$package]}" ] || command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  if ! apt_install "${missing[@]}"; then
    say "WARNING: ${missing[*]} not found and could not be installed automatically here."
    say "  mmemo needs espeak-ng for the demo corpus and ffmpeg for MP4/M4A/other non-WAV audio;"
    say "  the tests also read real speech from pocketsphinx-testdata."
    say "  Debian/Ubuntu: sudo apt-get install ${missing[*]}"
    say "  macOS:         brew install ${missing[*]}"
    say "  conda:         conda install -c conda-forge ${missing[*]}"
    say "  Continuing with the Python setup; the demo and tests need them."
  fi
fi

# -- 2. virtual environment -----------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  say "ERROR: mmemo needs Python >= 3.10 ($PYTHON is $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11."
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# -- 3. torch -------------------------------------------------------------------------------
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH_VERSION'))" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA GPU found: installing the CUDA build of torch $TORCH_VERSION"
    quiet "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  else
    say "no GPU: installing the CPU build of torch $TORCH_VERSION"
    # A local CPU wheel (pip's find-links) first; else PyTorch's CPU index. Dependencies come in step 4.
    "${PIP[@]}" install -q --no-deps --no-index "torch==$TORCH_VERSION" 2>/dev/null \
      || quiet "${PIP[@]}" install -q --no-deps "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# -- 4. pinned dependencies and mmemo -------------------------------------------------------
say "installing pinned dependencies (requirements/lock.txt)"
# The lock is the complete, resolved set, so --no-deps installs exactly it (and keeps
# openai-whisper from pulling triton, a CUDA-only package it does not need here).
quiet "${PIP[@]}" install -q --no-deps -r requirements/lock.txt
quiet "${PIP[@]}" install -q --no-deps -e .
"$VENV/bin/python" -c "import torch, mmemo; print('[setup] torch', torch.__version__, '| cuda' if torch.cuda.is_available() else '| cpu')"
say "done: activate with 'source $VENV/bin/activate', or use 'make demo' / 'make test'"

#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the tools that benchmarks/run.py compares maskscope to.
#
#   bash benchmarks/setup_peers.sh            # TORCH=torch==2.13.0 by default
#   TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu" bash benchmarks/setup_peers.sh
#
# The project's own .venv is never touched. torch goes in first and pinned, so that the
# peers do not pull another (multi-GB CUDA) build; muppet-xai is installed without its
# declared dependencies (torchvision does not import beside a CPU-only torch 2.13; the few
# transforms it and interpret-segmentation's hdm import come from benchmarks/stubs/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${VENV:-$HERE/.venv-peers}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# shellcheck disable=SC2086
$VENV/bin/python -c "import torch" 2>/dev/null || $PIP install $TORCH
TORCH_PIN="torch==$($VENV/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
# keep the torch that is there: every later install is constrained to it
CONSTRAINTS="$(mktemp)"
echo "$TORCH_PIN" > "$CONSTRAINTS"
trap 'rm -f "$CONSTRAINTS"' EXIT
$PIP install -c "$CONSTRAINTS" -r "$HERE/requirements-peers.txt"
# muppet-xai declares torchvision and more; it imports loguru and scikit-learn
$PIP install --no-deps muppet-xai
$PIP install -c "$CONSTRAINTS" loguru scikit-learn
$PIP install -e "$ROOT" --no-deps
echo "peers venv ready: $VENV"
$VENV/bin/python -c "import torch; print('torch', torch.__version__)"

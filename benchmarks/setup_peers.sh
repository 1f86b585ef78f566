#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the tools that benchmarks/run.py compares maskscope to.
#
#   bash benchmarks/setup_peers.sh            # TORCH=torch==2.13.0 by default
#   TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu" bash benchmarks/setup_peers.sh
#   TORCH_FROM=/path/to/other/venv/bin/python bash benchmarks/setup_peers.sh
#
# TORCH_FROM reuses that interpreter's torch instead of installing one: a .pth file in the
# peers' venv adds $VENV/torch-from, a folder of symlinks to torch and the packages torch
# requires (nothing else of that environment, nothing copied), and every install is
# constrained to their versions. The venv is made with that interpreter's Python (PYTHON
# defaults to TORCH_FROM) and the other environment is only read.
#
# The project's own .venv is never touched. torch goes in first and pinned, so that the
# peers do not pull another (multi-GB CUDA) build; muppet-xai is installed without its
# declared dependencies (torchvision does not import beside a CPU-only torch 2.13; the few
# transforms it and interpret-segmentation's hdm import come from benchmarks/stubs/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${VENV:-$HERE/.venv-peers}"
TORCH_FROM="${TORCH_FROM:-}"
PYTHON="${PYTHON:-${TORCH_FROM:-python3}}"
TORCH="${TORCH:-torch==2.13.0}"

# TORCH_FROM: link its torch and torch's requirements (pip, setuptools, wheel: the venv's
# own) into $VENV/torch-from and pin them. The linked dist-info folders have no RECORD, so
# pip can never uninstall through the links into the other environment.
link_torch() {
    local abi links site
    abi='import sys; print(sys.version_info[:2])'
    if [ "$("$TORCH_FROM" -c "$abi")" != "$("$VENV/bin/python" -c "$abi")" ]; then
        echo "TORCH_FROM=$TORCH_FROM and $VENV/bin/python are different Python versions" >&2
        exit 1
    fi
    links="$(cd "$VENV" && pwd)/torch-from"
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    rm -rf "$links"
    "$TORCH_FROM" - "$links" >> "$CONSTRAINTS" <<'PY'
import importlib.metadata as md
import os
import sys

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

links = sys.argv[1]
os.makedirs(links)
todo, seen = ["torch"], set()
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen or name in ("pip", "setuptools", "wheel"):
        continue
    seen.add(name)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    if not dist.files:
        sys.exit(f"{name} has no RECORD in {sys.prefix}: cannot tell its files")
    meta = next(f for f in dist.files if f.match("*.dist-info/METADATA"))
    info = str(dist.locate_file(meta).parent)
    site = os.path.dirname(info)
    top = {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}
    for part in sorted(top - {os.path.basename(info)}):
        os.symlink(os.path.join(site, part), os.path.join(links, part))
    own = os.path.join(links, os.path.basename(info))
    os.makedirs(own)
    for entry in os.listdir(info):
        if entry != "RECORD":
            os.symlink(os.path.join(info, entry), os.path.join(own, entry))
    print(f"{dist.metadata['Name']}=={dist.version.split('+')[0]}")
    for req in map(Requirement, dist.requires or []):
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
PY
    echo "$links" > "$site/torch-from.pth"
    echo "linked from $TORCH_FROM: $(tr '\n' ' ' < "$CONSTRAINTS")"
    "$VENV/bin/python" -W ignore -c 'import sys, torch; sys.exit(None if torch.__file__.startswith(sys.argv[1])
        else f"the venv has its own torch ({torch.__file__}): remove it or the venv")' "$links"
}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
[ -z "$TORCH_FROM" ] || link_torch
# shellcheck disable=SC2086
$VENV/bin/python -c "import torch" 2>/dev/null || $PIP install $TORCH
TORCH_PIN="torch==$($VENV/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
# keep the torch that is there: every later install is constrained to it
echo "$TORCH_PIN" >> "$CONSTRAINTS"
$PIP install -c "$CONSTRAINTS" -r "$HERE/requirements-peers.txt"
# muppet-xai declares torchvision and more; it imports loguru and scikit-learn
$PIP install --no-deps muppet-xai
$PIP install -c "$CONSTRAINTS" loguru scikit-learn
$PIP install -e "$ROOT" --no-deps
echo "peers venv ready: $VENV"
$VENV/bin/python -c "import torch; print('torch', torch.__version__)"

#!/usr/bin/env bash
# Make ./.venv and install tokgen into it (editable). `bash tools/setup.sh dev` adds the test tools.
#
# torch is chosen here rather than pinned in pyproject: a torch already in the venv is kept; a
# machine with an NVIDIA driver gets the default (CUDA) build; a CPU-only machine gets the CPU build
# (a local wheel when pip's find-links has one, else PyTorch's CPU index), so a laptop never
# downloads several GB of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "tokgen setup: NVIDIA driver found, installing the default torch build"
    "${pip[@]}" torch
  elif "${pip[@]}" "torch==2.13.0+cpu" 2>/dev/null; then
    echo "tokgen setup: installed the CPU build of torch 2.13.0"
  else
    echo "tokgen setup: no GPU, installing the CPU build of torch"
    "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

if [ "$extras" = "dev" ]; then
  "${pip[@]}" -e ".[dev]"
  # Streaming shards (litdata) for the tests. Its metadata asks for torchvision, which would replace
  # the CPU torch with a CUDA build and does not import beside it; litdata's readers do not need it.
  "${pip[@]}" --no-deps "litdata==0.2.76"
  "${pip[@]}" boto3 obstore requests tifffile "urllib3>=1.26" lightning-utilities filelock
else
  "${pip[@]}" -e .
fi
echo "tokgen setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"

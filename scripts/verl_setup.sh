#!/usr/bin/env bash
# A virtualenv with the real verl (requirements/verl.lock: verl 0.9.1, which pins transformers<5.11, so it cannot
# share the service's environment) and the client package, for the test that runs verl's own advantage
# estimators on the dense rewards of scribe_client/verl_dense.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${SCRIBE_VERL_VENV:-.venv-verl}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import verl, scribe_client" 2>/dev/null; then
  echo "verl already installed in $VENV"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install -r requirements/verl.lock
pip install --no-deps -e ./clients
"$VENV/bin/python" -c "import verl; print('verl', verl.__version__, 'installed in $VENV')"

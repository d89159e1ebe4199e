#!/usr/bin/env bash
# The lock files (set-up, Docker and CI install from them; pyproject.toml keeps open ranges for people who
# install the package into their own environment). Review the diff before committing it.
#   bash scripts/lock.sh            after a dependency was added or removed: every other pin stays as it is
#   bash scripts/lock.sh --upgrade  refresh on purpose: every package to the newest release the ranges allow
#   requirements/service.lock  the service's runtime dependencies (the Docker image)
#   requirements/dev.lock      + test tools and the client packages (scripts/setup.sh, CI), runtime pins kept
#   requirements/vllm.lock     the vLLM judge server's own virtualenv (scripts/vllm_setup.sh)
#   requirements/verl.lock     verl's own virtualenv for the dense-reward tests (scripts/verl_setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TOOLS=var/lock-tools
[ -x "$TOOLS/bin/pip-compile" ] || { "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/pip" install -q "pip-tools==7.6.2"; }
UPGRADE=()
[ "${1:-}" = "--upgrade" ] && UPGRADE=(--upgrade)
compile() { "$TOOLS/bin/pip-compile" -q --strip-extras --no-emit-index-url --no-emit-find-links ${UPGRADE[@]+"${UPGRADE[@]}"} "$@"; }
compile -o requirements/service.lock pyproject.toml requirements/torch.in
compile --extra dev --extra train -o requirements/dev.lock pyproject.toml clients/pyproject.toml \
  requirements/torch.in requirements/dev.in
compile -o requirements/vllm.lock requirements/vllm.in
compile -o requirements/verl.lock requirements/verl.in
echo "locks written; review: git diff requirements/"

#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, including the integration tests against a real
# vLLM server that this script installs, starts and stops, and verl's own estimators in a virtualenv of their
# own (scripts/verl_setup.sh). SCRIBE_TEST_VLLM=0 skips vLLM (and those tests).
# It touches nothing outside this checkout and the user cache unless asked: SCRIBE_TEST_INSTALL_SYSTEM=1
# (set by .ci/run) lets it apt-get install the Debian tools some tests use; without it, tests that need a
# missing tool are skipped and name it.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/setup.sh
t1=$(date +%s); echo "timing: service set-up $((t1 - t0))s"
bash scripts/deploy_tools.sh  # kubectl + kustomize for rendering deploy/k8s
export HF_HUB_OFFLINE=1
if [ "${SCRIBE_TEST_INSTALL_SYSTEM:-0}" = 1 ]; then
  bash scripts/install_system_tools.sh
fi
t1=$(date +%s); echo "timing: deploy tools and system packages $((t1 - t0))s (set-up included)"
# verl's virtualenv installs in the background while vLLM installs and starts: each pip install keeps about
# one core busy, so on a 2-core machine the two together take little more than the longer one
mkdir -p var/log
bash scripts/verl_setup.sh > var/log/verl_setup.log 2>&1 &
verl_pid=$!
trap 'kill "$verl_pid" 2>/dev/null || true' EXIT
if [ "${SCRIBE_TEST_VLLM:-1}" != "0" ]; then
  bash scripts/vllm_setup.sh
  t2=$(date +%s); echo "timing: vLLM install $((t2 - t1))s (verl's environment installing beside it)"
  trap 'kill "$verl_pid" 2>/dev/null || true; bash scripts/vllm_stop.sh' EXIT
  bash scripts/vllm_start.sh
  t3=$(date +%s); echo "timing: vLLM start-up $((t3 - t2))s"
  export SCRIBE_TEST_VLLM_URL="http://127.0.0.1:${SCRIBE_VLLM_PORT:-8011}"
fi
if ! wait "$verl_pid"; then
  echo "verl set-up failed; its log (var/log/verl_setup.log) ends:"; tail -30 var/log/verl_setup.log; exit 1
fi
verl_pid=""
grep -v "^WARNING: Location" var/log/verl_setup.log || true
t4=$(date +%s); echo "timing: all set-up $((t4 - t0))s"
# the slowest tests are listed at the end, so a suite that grows towards CI's limit shows where
.venv/bin/python -m pytest --durations=25 "$@"

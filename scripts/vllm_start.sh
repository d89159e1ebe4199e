#!/usr/bin/env bash
# Start an OpenAI-compatible vLLM server on the prepared judge model, wait until it is ready, write its pid.
# Settings (environment): SCRIBE_VLLM_MODEL (default: the prepared SmolLM2 directory), SCRIBE_VLLM_PORT (8011),
# SCRIBE_VLLM_HOST (127.0.0.1), SCRIBE_VLLM_ARGS (extra vLLM flags), SCRIBE_VLLM_READY_TIMEOUT (600 s).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCRIBE_VLLM_VENV:-.venv-vllm}
MODEL=${SCRIBE_VLLM_MODEL:-${SCRIBE_JUDGE_MODEL_DIR:-$HOME/.cache/scribe-rm/models/smollm2-135m-instruct}}
HOST=${SCRIBE_VLLM_HOST:-127.0.0.1}
PORT=${SCRIBE_VLLM_PORT:-8011}
RUN=${SCRIBE_RUN_DIR:-var/run}
mkdir -p "$RUN"
PIDFILE="$RUN/vllm-$PORT.pid"
LOG="$RUN/vllm-$PORT.log"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "vLLM already running (pid $(cat "$PIDFILE"))"; exit 0
fi
# CPU defaults; a GPU deployment passes its own flags in SCRIBE_VLLM_ARGS (see README).
# compact JSON under structured outputs (library induction): with free whitespace a small model emits
# newlines until max_tokens, and vLLM takes this only as a server setting
DEFAULT_ARGS="--dtype bfloat16 --max-model-len 2048 --structured-outputs-config={\"backend\":\"xgrammar\",\"disable_any_whitespace\":true}"
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
started=$(date +%s)
setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name judge \
  --host "$HOST" --port "$PORT" ${SCRIBE_VLLM_ARGS:-$DEFAULT_ARGS} > "$LOG" 2>&1 &
echo $! > "$PIDFILE"
deadline=$((started + ${SCRIBE_VLLM_READY_TIMEOUT:-600}))
until curl -sf "http://$HOST:$PORT/health" > /dev/null; do
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "vLLM exited during start-up; last log lines:"; tail -30 "$LOG"; rm -f "$PIDFILE"; exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "vLLM not ready after ${SCRIBE_VLLM_READY_TIMEOUT:-600}s"; tail -30 "$LOG"; bash scripts/vllm_stop.sh; exit 1
  fi
  sleep 2
done
echo "vLLM ready on http://$HOST:$PORT (pid $(cat "$PIDFILE"), start-up $(( $(date +%s) - started ))s, log $LOG)"

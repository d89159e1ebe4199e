#!/usr/bin/env bash
# Stop the vLLM server started by vllm_start.sh, by its pid (and its process group: the engine core too).
set -uo pipefail
cd "$(dirname "$0")/.."
PORT=${SCRIBE_VLLM_PORT:-8011}
PIDFILE=${SCRIBE_RUN_DIR:-var/run}/vllm-$PORT.pid
[ -f "$PIDFILE" ] || { echo "no vLLM pid file at $PIDFILE"; exit 0; }
pid=$(cat "$PIDFILE")
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -KILL -- "-$pid" 2>/dev/null || true
rm -f "$PIDFILE"
echo "vLLM (pid $pid) stopped"

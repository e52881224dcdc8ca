#!/usr/bin/env bash
# The README's test command: lint, type-check and run every test against the real stack.
# Starts the local stack (Kafka KRaft + Redis) unless KAFKA_BOOTSTRAP and REDIS_URL
# point at one, and stops it again if it started it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "== lint and types"
ruff check .
ruff format --check .
mypy

started_here=0
if [ -z "${KAFKA_BOOTSTRAP:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  if ! streamscore status >/dev/null 2>&1; then
    started_here=1
    trap 'streamscore down || true' EXIT
  fi
  echo "== local stack"
  streamscore up
  eval "$(streamscore env)"
fi

echo "== tests"
# pytest exits non-zero on failures and with 5 when no test ran: both fail this script.
# On failure `set -e` exits here and the EXIT trap stops the stack.
pytest -q -p no:cacheprovider --durations=25 "$@"
if [ "$started_here" = 1 ]; then trap - EXIT; streamscore down; fi

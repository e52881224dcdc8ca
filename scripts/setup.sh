#!/usr/bin/env bash
# Installs everything streamscore needs on a fresh Debian-like machine (no Docker):
# redis-server from the OS packages, a Python 3.11 virtualenv with the pinned
# packages, and the Kafka broker jars from Maven Central (cached in ~/.cache/streamscore).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. OS packages: redis-server (and redis-cli, which builds the test Redis Cluster),
#    promtool (package prometheus) for the alert-rule tests, openssl for the secured
#    stack's throwaway certificates; Kafka runs on the machine's Java 17 + Maven.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing OS packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # Debian may start system services after install; the project runs its own, on loopback.
  for svc in redis-server prometheus; do
    if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    as_root pkill -x "$svc" >/dev/null 2>&1 || true
  done
fi

# 2. Python virtualenv with pinned, known-good versions (constraints.txt).
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || { echo "streamscore needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
stamp=.venv/.streamscore-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv with $($PY --version) and installing packages (a few minutes the first time)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "pip>=25"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
else
  log ".venv up to date"
fi

# 3. Kafka broker jars (Maven Central, through the project's pom.xml), cached.
.venv/bin/python -m streamscore.services.stack.fetch
log "done"

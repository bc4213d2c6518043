#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (a virtualenv
# with the package and its test tools, the browser client built from npm, Debian's
# chromium, redis-server and nginx), starts a private redis-server for the run (unless
# CHITCHAT_TEST_REDIS_URL names one), then runs ruff, mypy and pytest. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the browser tests
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the Redis engine
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)  # sticky LB
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  ${SUDO:-} apt-get update -qq
  ${SUDO:-} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing chitchat and its test tools"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test,dev]"

echo "== building the browser client (sockjs-client from npm)"
(cd static && npm ci --no-audit --no-fund --silent && npm run --silent build)

echo "== client unit tests (node --test, fake transport and clock)"
(cd static && npm test --silent)

echo "== ruff"
.venv/bin/ruff check chitchat tests demo
echo "== mypy (strict, the package)"
.venv/bin/mypy
if [ -z "${CHITCHAT_TEST_REDIS_URL:-}" ]; then
  # A private redis-server for this run only: loopback, a free port, its own directory,
  # durable as docs/design.md asks (append-only file synced on every write, no
  # eviction); stopped by its pid however the run ends.
  redis_dir=$(mktemp -d)
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --maxmemory-policy noeviction --dir "$redis_dir" \
    --logfile "$redis_dir/redis.log" --daemonize no &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$redis_dir"' EXIT
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null
  export CHITCHAT_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
  echo "== redis-server $(redis-server --version | cut -d' ' -f3) on port $redis_port (pid $redis_pid)"
fi

echo "== pytest"
.venv/bin/python -m pytest "$@"

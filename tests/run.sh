#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (a virtualenv
# with the package and its test tools, the browser client built from npm, Debian's
# chromium), then runs ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium (for the browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  ${SUDO:-} apt-get update -qq
  ${SUDO:-} apt-get install -y -qq --no-install-recommends chromium >/dev/null
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
echo "== pytest"
.venv/bin/python -m pytest "$@"

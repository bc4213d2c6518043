#!/usr/bin/env bash
# Start the demo chat: installs chitchat into .venv (building the browser client from
# npm) and serves the demo on http://127.0.0.1:8080/. Arguments go to demo/app.py
# (--port, --host, --history, ...; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check .
exec .venv/bin/python demo/app.py "$@"

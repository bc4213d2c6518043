#!/usr/bin/env bash
# The benchmark suite: every server on one core, the load generator on the other, then
# docs/benchmarks.md is rewritten with the results. Not part of the test run.
#
#   bash bench/run.sh            # the full suite (~20 minutes on 2 cores): docs/benchmarks.md
#   bash bench/run.sh --quick    # a smoke test (~2 minutes): N=1000, one run of each case,
#                                # written to bench/results/quick.md
#
# Other arguments go to bench/run.py (see --help): --servers, --sizes, --rates, --reps
# pick a subset; --profile DIR runs every server under py-spy; --render JSON rewrites
# the report from an earlier run's bench/results/latest.json. Needs Python 3.11+ and util-linux's
# taskset (installed from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v taskset >/dev/null 2>&1; then
  echo "== installing taskset (util-linux)"
  export DEBIAN_FRONTEND=noninteractive
  ${SUDO:-} apt-get update -qq
  ${SUDO:-} apt-get install -y -qq --no-install-recommends util-linux >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing the benchmark's dependencies (bench/requirements.txt)"
.venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt

cpus=$(nproc)
if [ "$cpus" -lt 2 ]; then
  echo "the benchmark needs 2 cpus (server on one, load on the other); this machine has $cpus" >&2
  exit 1
fi
# chitchat is imported from this checkout (PYTHONPATH), so the numbers are the tree's.
# The server goes to cpu 0, the runner and its load-generator processes to the rest.
echo "== running (server on cpu 0, load on cpus 1-$((cpus - 1)))"
PYTHONPATH="$PWD" exec taskset -c "1-$((cpus - 1))" .venv/bin/python bench/run.py --server-cpu 0 "$@"

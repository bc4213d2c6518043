#!/usr/bin/env bash
# The benchmark suite: every server on one core, the load generator on the other, then
# docs/benchmarks.md is rewritten with the results. Not part of the test run.
#
#   bash bench/run.sh            # the full suite (~20 minutes on 2 cores): docs/benchmarks.md
#   bash bench/run.sh --quick    # a smoke test (~2 minutes): N=1000, one run of each case,
#                                # written to bench/results/quick.md
#
# Other arguments go to bench/run.py (see --help): --servers, --sizes, --rates, --reps
# pick a subset; --storm-sizes and --memory-cycles size the connect storms (1,000 and
# 10,000 clients) and the memory scenario (10,000 cycles); --rooms the many-rooms shapes
# (1x1000,1000x5); --skip storm,joinstorm,memory,rtt,fanout,rooms,reads leaves phases out; --profile DIR runs every server under py-spy; --render JSON rewrites
# the report from an earlier run's bench/results/latest.json; --before DIR (a checkout of an
# earlier commit) adds the chitchat-sockjs-before and chitchat-ws-before servers. Needs Python 3.11+ and util-linux's
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
# The 10,000-connection storm holds that many sockets in the server, and in the load
# generator (spread over its processes): raise the soft limit on open files to the hard
# one if it is lower than that needs.
need=12000
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$need" ]; then
    ulimit -Sn "$need"
  else
    ulimit -Sn "$hard"
    echo "warning: at most $hard open files here; the 10,000-client storm needs ~$need" \
      "(raise the hard limit, or pass --storm-sizes 1000)" >&2
  fi
fi
echo "== open files limit: $(ulimit -Sn)"
# chitchat is imported from this checkout (PYTHONPATH), so the numbers are the tree's.
# The server goes to cpu 0, the runner and its load-generator processes to the rest.
echo "== running (server on cpu 0, load on cpus 1-$((cpus - 1)))"
PYTHONPATH="$PWD" exec taskset -c "1-$((cpus - 1))" .venv/bin/python bench/run.py --server-cpu 0 "$@"

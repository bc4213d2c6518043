#!/usr/bin/env bash
# Start the demo chat: installs chitchat into .venv (building the browser client from
# npm) and serves the demo on http://127.0.0.1:8080/ (--port/--host to change).
#
#   bash demo/run.sh                                   one process, everything in memory
#   bash demo/run.sh --redis URL                       one process, the chat kept in Redis
#   bash demo/run.sh --redis URL --procs 2             two processes on that Redis, behind
#                                                      nginx (deploy/nginx.conf) on --port
#
# With --procs N the demo processes listen on --port + 1 .. --port + N and nginx (Debian's
# package `nginx`) listens on --port with the sticky routing of deploy/nginx.conf. Without
# nginx installed it says so and serves the processes on their own ports. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

procs=1
redis=""
port=8080
host=127.0.0.1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --procs) procs="$2"; shift 2 ;;
    --redis) redis="$2"; args+=(--redis "$2"); shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

[ -x .venv/bin/python ] || python3 -m venv .venv
if [ -n "$redis" ]; then
  .venv/bin/pip install -q --disable-pip-version-check ".[redis]"
else
  .venv/bin/pip install -q --disable-pip-version-check .
fi

if [ "$procs" -le 1 ]; then
  exec .venv/bin/python demo/app.py --port "$port" --host "$host" "${args[@]}"
fi
if [ -z "$redis" ]; then
  echo "--procs $procs needs --redis URL: processes share the chat through Redis" >&2
  exit 2
fi

pids=()
dir=$(mktemp -d)
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 0' INT TERM

upstreams=""
for i in $(seq "$procs"); do
  .venv/bin/python demo/app.py --port $((port + i)) --host 127.0.0.1 "${args[@]}" &
  pids+=($!)
  upstreams="$upstreams $((port + i))"
done

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx_bin" ]; then
  echo "nginx is not installed (apt-get install nginx): the demo processes serve on" \
       "ports$upstreams; put a load balancer with sticky SockJS sessions in front of them" \
       "(deploy/nginx.conf)" >&2
else
  # deploy/nginx.conf as shipped, with these processes as its upstream and --port as
  # its address, inside a minimal nginx.conf of its own.
  site=$(awk -v ports="$upstreams" -v listen="$host:$port" '
    /^    server 127\.0\.0\.1:[0-9]+;$/ {
      if (!done) { n = split(ports, p, " "); for (i = 1; i <= n; i++) print "    server 127.0.0.1:" p[i] ";"; done = 1 }
      next
    }
    /^    listen 8080;$/ { print "    listen " listen ";"; next }
    { print }' deploy/nginx.conf)
  cat > "$dir/nginx.conf" <<CONF
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$site
}
CONF
  "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  echo "chitchat demo: $procs processes on $redis behind nginx on http://$host:$port/"
fi
wait -n "${pids[@]}"

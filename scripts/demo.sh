#!/usr/bin/env bash
# Runs the demo on 127.0.0.1:8080 in the foreground (Ctrl-C stops it), or stops it.
#
#   scripts/demo.sh start [cookie|redis]
#   scripts/demo.sh stop
#
# Runtime files live in build/demo: the secret, the users file (alice/secret, bob/hunter22),
# logs, and for the Redis variant a redis-server on a unix socket of its own.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/build/demo"
nginx="$root/build/sbin/nginx"
variant=${2:-${DEMO:-cookie}}

stop() {
  local rc=0
  if [ -f "$prefix/nginx.pid" ] && kill -0 "$(cat "$prefix/nginx.pid")" 2>/dev/null; then
    kill -QUIT "$(cat "$prefix/nginx.pid")" && echo "demo: nginx stopped"
  fi
  if [ -f "$prefix/redis.pid" ] && kill -0 "$(cat "$prefix/redis.pid")" 2>/dev/null; then
    local pid
    pid=$(cat "$prefix/redis.pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "demo: redis-server stopped"
  fi
  rm -f "$prefix/redis.pid"
  return $rc
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start [cookie|redis] | stop" >&2; exit 2 ;;
esac

case "$variant" in
  cookie) conf_in="$root/examples/demo.conf" ;;
  redis) conf_in="$root/examples/demo-redis.conf" ;;
  *) echo "demo: unknown variant '$variant' (cookie or redis)" >&2; exit 2 ;;
esac

[ -x "$nginx" ] || { echo "demo: $nginx is missing, run make first" >&2; exit 1; }
stop >/dev/null 2>&1 || true
mkdir -p "$prefix/tmp" "$prefix/logs"
if [ ! -s "$prefix/secret" ]; then
  (umask 077; openssl rand -base64 48 | tr -d '\n' >"$prefix/secret"; echo >>"$prefix/secret")
fi
if [ ! -s "$prefix/users" ]; then
  htpasswd -bcB -C 10 "$prefix/users" alice secret 2>/dev/null
  htpasswd -bm "$prefix/users" bob hunter22 2>/dev/null
fi
sed -e "s#@PREFIX@#$prefix#g" -e "s#@EXAMPLES@#$root/examples#g" "$conf_in" >"$prefix/nginx.conf"

if [ "$variant" = redis ]; then
  # nginx's workers run as an unprivileged user when the demo is started as root: let them in.
  redis-server --port 0 --unixsocket "$prefix/redis.sock" --unixsocketperm 777 --save '' \
    --appendonly no --daemonize no --logfile "$prefix/redis.log" &
  echo $! >"$prefix/redis.pid"
  for _ in $(seq 50); do [ -S "$prefix/redis.sock" ] && break; sleep 0.1; done
fi

"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -t -q
cat <<MSG
demo ($variant store) on http://127.0.0.1:8080 — try, with a cookie jar:
  curl -c jar -b jar -i http://127.0.0.1:8080/cookie        set cookie name=waws
  curl -c jar -b jar -i http://127.0.0.1:8080/del           delete it
  curl -c jar -b jar -i http://127.0.0.1:8080/session       session['name'] = 'waws'
  curl -c jar -b jar    http://127.0.0.1:8080/getValue      shows it (SSI template)
  curl -c jar -b jar    http://127.0.0.1:8080/              hello + login link
  curl -c jar -b jar -i -H 'Accept: text/html' http://127.0.0.1:8080/app/   302 to /login?next=/app/
  or open http://127.0.0.1:8080/ in a browser and log in as alice / secret.
Ctrl-C (or make demo-stop) stops it. Logs: $prefix/error.log
MSG
trap 'stop; exit 0' INT TERM
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" &
wait $! || true
stop >/dev/null 2>&1 || true

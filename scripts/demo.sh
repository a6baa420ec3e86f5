#!/usr/bin/env bash
# Runs the demo on 127.0.0.1:8080 in the foreground (Ctrl-C stops it), or stops it.
#
#   scripts/demo.sh start [cookie|redis|redis-tls|flask]
#   scripts/demo.sh stop
#
# Runtime files live in build/demo: the secret, the users file (alice/secret, bob/hunter22),
# logs, and for the Redis variant a redis-server on a unix socket of its own. The redis-tls
# variant runs a redis-server that speaks TLS only, on 127.0.0.1:$DEMO_REDIS_TLS_PORT (6380),
# with a test CA and a server certificate (IP 127.0.0.1, DNS localhost) made once in
# build/demo/tls by openssl; nginx verifies the server against that CA. The flask variant runs
# examples/flask/app.py (Debian's python3-flask) on 127.0.0.1:$DEMO_FLASK_PORT (8082), sharing
# its session cookie with nginx (session_format flask; the secret file's line is its SECRET_KEY).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/build/demo"
nginx="$root/build/sbin/nginx"
variant=${2:-${DEMO:-cookie}}
tls_port=${DEMO_REDIS_TLS_PORT:-6380}
flask_port=${DEMO_FLASK_PORT:-8082}
tls_dir="$prefix/tls"

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
  if [ -f "$prefix/flask.pid" ] && kill -0 "$(cat "$prefix/flask.pid")" 2>/dev/null; then
    kill "$(cat "$prefix/flask.pid")" && echo "demo: Flask app stopped"
  fi
  rm -f "$prefix/flask.pid"
  return $rc
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start [cookie|redis|redis-tls|flask] | stop" >&2; exit 2 ;;
esac

case "$variant" in
  cookie) conf_in="$root/examples/demo.conf" ;;
  redis) conf_in="$root/examples/demo-redis.conf" ;;
  redis-tls) conf_in="$root/examples/demo-redis-tls.conf" ;;
  flask) conf_in="$root/examples/demo-flask.conf" ;;
  *) echo "demo: unknown variant '$variant' (cookie, redis, redis-tls or flask)" >&2; exit 2 ;;
esac

# The test PKI of the redis-tls variant: a CA and a server certificate for 127.0.0.1 and
# localhost, P-256 keys, valid a year; made again when missing or expiring within a day.
make_tls() {
  if [ -s "$tls_dir/ca.pem" ] && [ -s "$tls_dir/server.key" ] &&
     openssl x509 -checkend 86400 -noout -in "$tls_dir/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  echo "demo: making a test CA and a Redis server certificate in $tls_dir"
  mkdir -p "$tls_dir"
  cat >"$tls_dir/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  local newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  # one && chain: set -e does not apply inside a subshell that is the left side of ||
  (
    cd "$tls_dir" && umask 077 &&
    openssl req -x509 "${newkey[@]}" -days 365 -subj "/CN=ngx_http_session demo CA" \
      -config openssl.cnf -extensions ca -keyout ca.key -out ca.pem 2>/dev/null &&
    openssl req -new "${newkey[@]}" -subj "/CN=localhost" -config openssl.cnf \
      -keyout server.key -out server.csr 2>/dev/null &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 8)" -days 365 -extfile openssl.cnf -extensions server \
      -out server.pem 2>/dev/null &&
    chmod 644 ca.pem server.pem && rm -f server.csr
  ) || { echo "demo: openssl failed to make the test certificates in $tls_dir" >&2; exit 1; }
}

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
sed -e "s#@PREFIX@#$prefix#g" -e "s#@EXAMPLES@#$root/examples#g" \
  -e "s#@REDIS_TLS_PORT@#$tls_port#g" -e "s#@FLASK_PORT@#$flask_port#g" \
  "$conf_in" >"$prefix/nginx.conf"

if [ "$variant" = flask ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$flask_port") 2>/dev/null; then
    echo "demo: something already listens on 127.0.0.1:$flask_port (set DEMO_FLASK_PORT)" >&2
    exit 1
  fi
  /usr/bin/python3 "$root/examples/flask/app.py" "$flask_port" "$prefix/secret" \
    >"$prefix/flask.log" 2>&1 &
  echo $! >"$prefix/flask.pid"
  ok=
  for _ in $(seq 100); do
    kill -0 "$(cat "$prefix/flask.pid")" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$flask_port") 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    echo "demo: the Flask app did not start on 127.0.0.1:$flask_port; $prefix/flask.log:" >&2
    tail -5 "$prefix/flask.log" >&2 || true
    stop >/dev/null 2>&1 || true
    exit 1
  fi
fi

if [ "$variant" = redis ]; then
  # nginx's workers run as an unprivileged user when the demo is started as root: let them in.
  redis-server --port 0 --unixsocket "$prefix/redis.sock" --unixsocketperm 777 --save '' \
    --appendonly no --daemonize no --logfile "$prefix/redis.log" &
  echo $! >"$prefix/redis.pid"
  for _ in $(seq 50); do [ -S "$prefix/redis.sock" ] && break; sleep 0.1; done
fi

if [ "$variant" = redis-tls ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null; then
    echo "demo: something already listens on 127.0.0.1:$tls_port (set DEMO_REDIS_TLS_PORT)" >&2
    exit 1
  fi
  make_tls
  redis-server --port 0 --tls-port "$tls_port" --bind 127.0.0.1 \
    --tls-cert-file "$tls_dir/server.pem" --tls-key-file "$tls_dir/server.key" \
    --tls-ca-cert-file "$tls_dir/ca.pem" --tls-auth-clients no --save '' --appendonly no \
    --daemonize no --dir "$prefix" --logfile "$prefix/redis.log" &
  echo $! >"$prefix/redis.pid"
  ok=
  for _ in $(seq 50); do
    kill -0 "$(cat "$prefix/redis.pid")" 2>/dev/null || break
    if redis-cli --tls --cacert "$tls_dir/ca.pem" -h 127.0.0.1 -p "$tls_port" ping 2>/dev/null |
       grep -q PONG; then ok=1; break; fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    echo "demo: the TLS redis-server did not answer on 127.0.0.1:$tls_port; $prefix/redis.log:" >&2
    tail -5 "$prefix/redis.log" >&2 || true
    stop >/dev/null 2>&1 || true
    exit 1
  fi
fi

"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -t -q
protected=app/
[ "$variant" = flask ] && protected=private/
cat <<MSG
demo ($variant store) on http://127.0.0.1:8080 — try, with a cookie jar:
  curl -c jar -b jar -i http://127.0.0.1:8080/cookie        set cookie name=waws
  curl -c jar -b jar -i http://127.0.0.1:8080/del           delete it
  curl -c jar -b jar -i http://127.0.0.1:8080/session       session['name'] = 'waws'
  curl -c jar -b jar    http://127.0.0.1:8080/getValue      shows it (SSI template)
  curl -c jar -b jar    http://127.0.0.1:8080/              hello + login link
  curl -c jar -b jar -i -H 'Accept: text/html' http://127.0.0.1:8080/$protected   302 to /login?next=/$protected
  or open http://127.0.0.1:8080/ in a browser and log in as alice / secret.
Ctrl-C (or make demo-stop) stops it. Logs: $prefix/error.log
MSG
if [ "$variant" = flask ]; then
  cat <<MSG
The Flask app (examples/flask/app.py) shares the session cookie, on 127.0.0.1:$flask_port:
  curl -c jar -b jar    http://127.0.0.1:8080/app/              Flask: not logged in
  curl -c jar -b jar -L http://127.0.0.1:8080/app/flask-login?u=carol   Flask logs carol in
  curl -c jar -b jar    http://127.0.0.1:8080/private/          nginx lets carol in (X-User)
  curl -c jar -b jar    http://127.0.0.1:8080/app/visits        Flask's own key, kept by nginx
MSG
fi
if [ "$variant" = redis-tls ]; then
  cat <<MSG
Redis speaks TLS only, on 127.0.0.1:$tls_port (test CA $tls_dir/ca.pem). The sessions in it:
  redis-cli --tls --cacert $tls_dir/ca.pem -p $tls_port keys 'flask*'
MSG
fi
trap 'stop; exit 0' INT TERM
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" &
wait $! || true
stop >/dev/null 2>&1 || true

#!/usr/bin/env bash
# Runs nginx with this module as a single process (master_process off; daemon off) under
# valgrind memcheck, drives a few hundred requests through every part of the module with curl,
# stops nginx with SIGQUIT by pid and checks valgrind's report.
#
#   scripts/valgrind-run.sh [ROUNDS]     default 8 rounds (about 25 requests each)
#
# Environment:
#   NGINX_BIN   nginx with the module compiled in (default build/sbin/nginx; `make` builds it)
#   VG_KEEP=1   keep the run directory (build/valgrind/run.*) even when the run passes
#
# Exercised: encrypted (default) and signed cookie stores, session_set/unset/clear/destroy/
# regenerate, cookie_set/cookie_delete, $session_* variables, session_require with a login
# redirect and with 401, tampered/truncated/oversized/duplicated/wrong-kind cookies, the login
# page (GET, SSI, CSRF cookie) and login POST against an $apr1$ user (right and wrong password,
# missing CSRF token, unsafe next), logout.
#
# Fails (exit 1) on:
#   - any Invalid read / Invalid write / Invalid free / Mismatched free / overlapping memcpy
#     anywhere in the process;
#   - "definitely lost" leaks and uninitialised-value errors whose stack contains a module frame
#     (ngx_http_session*, ngx_session*, sess::, or a file under src/ of this repo);
#   - a 5xx answer, a request that did not get the expected status, [alert]/[crit]/[emerg] in
#     error.log, or nginx not stopping on SIGQUIT.
# Other definite leaks and uninitialised-value reports (nginx core, OpenSSL, libc) are listed but
# do not fail the run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

rounds=${1:-8}
bin=${NGINX_BIN:-$root/build/sbin/nginx}
if [ ! -x "$bin" ]; then
  echo "valgrind-run.sh: $bin not found (build it with make, or set NGINX_BIN)" >&2
  exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind-run.sh: valgrind not installed" >&2; exit 2; }

mkdir -p build/valgrind
run=$(mktemp -d "$root/build/valgrind/run.XXXXXX")
mkdir -p "$run/logs" "$run/html"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"

head -c 36 /dev/urandom | base64 >"$run/secret"      # 48 characters
head -c 36 /dev/urandom | base64 >>"$run/secret"     # a second, verify-only key
password=secret-$RANDOM
echo "alice:$(openssl passwd -apr1 "$password")" >"$run/users"
echo "# comment" >>"$run/users"
cp examples/html/login.shtml "$run/html/login.shtml"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"

cat >"$run/nginx.conf" <<CONF
$user_line
daemon off;
master_process off;
pid $run/nginx.pid;
error_log $run/error.log info;
events { worker_connections 128; }
http {
    access_log $run/access.log;
    client_body_temp_path $run/tmp_body;
    proxy_temp_path $run/tmp_proxy;
    fastcgi_temp_path $run/tmp_fastcgi;
    uwsgi_temp_path $run/tmp_uwsgi;
    scgi_temp_path $run/tmp_scgi;

    session_secret_file $run/secret;
    session_lifetime 1h;
    session_idle_timeout 30m;
    session_renew 0s;

    server {
        listen 127.0.0.1:$port;
        root $run/html;
        default_type text/plain;

        location = /set        { session_set user alice; session_set role admin; session_set note "\$arg_note"; return 200 "set\n"; }
        location = /get        { return 200 "user=\$session_user role=\$session_role note=\$session_note status=\$session_status\n"; }
        location = /unset      { session_unset role; return 200 "unset\n"; }
        location = /regenerate { session_regenerate; return 200 "regenerate\n"; }
        location = /clear      { session_clear; return 200 "clear\n"; }
        location = /destroy    { session_destroy; return 200 "destroy\n"; }
        location = /cookie     { cookie_set flavour "\$arg_v" max_age=1h path=/ samesite=strict httponly; return 200 "cookie\n"; }
        location = /uncookie   { cookie_delete flavour path=/; return 200 "uncookie\n"; }

        location = /signed/set { session_encrypt off; session_cookie sig; session_set user bob; return 200 "set\n"; }
        location = /signed/get { session_encrypt off; session_cookie sig; return 200 "user=\$session_user status=\$session_status\n"; }

        location = /private    { session_require /login; return 200 "private \$session_user\n"; }
        location = /api        { session_require; return 200 "api \$session_user\n"; }

        location = /login {
            session_login;
            session_login_page /login.shtml;
            session_login_user_file $run/users;
            session_login_redirect /get;
        }
        location = /login.shtml { internal; ssi on; default_type text/html; }
        location = /logout { session_logout /get; }
    }
}
CONF

vglog="$run/valgrind.log"
echo "valgrind-run.sh: starting nginx under valgrind on 127.0.0.1:$port (run dir $run)"
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40 \
  --log-file="$vglog" \
  "$bin" -p "$run/" -c "$run/nginx.conf" </dev/null >"$run/stdout" 2>"$run/stderr" &
pid=$!   # valgrind runs nginx in this very process: SIGQUIT to it is SIGQUIT to nginx

stop_nginx() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "valgrind-run.sh: nginx did not stop within 120s of SIGQUIT, killing" >&2
      kill -KILL "$pid" 2>/dev/null || true
      stuck=1
    fi
  fi
  vg_rc=0
  wait "$pid" 2>/dev/null || vg_rc=$?
}
stuck=0
trap 'kill -KILL $pid 2>/dev/null || true' EXIT

up=0
for _ in $(seq 1 600); do
  if curl -s -o /dev/null -m 5 "$base/get"; then up=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "valgrind-run.sh: nginx did not start; stderr:" >&2
  cat "$run/stderr" "$run/error.log" >&2 2>/dev/null || true
  tail -30 "$vglog" >&2 || true
  exit 1
fi

requests=0
problems=()
# req EXPECTED_STATUS NAME curl-args...   (EXPECTED: a status, 4xx, or alternatives a|b)
req() {
  local want=$1 name=$2
  shift 2
  local code w ok=0
  code=$(curl -s -o "$run/body" -w '%{http_code}' -m 60 "$@") || true
  code=${code:-000}
  requests=$((requests + 1))
  IFS='|' read -r -a alts <<<"$want"
  for w in "${alts[@]}"; do
    if [ "$w" = "$code" ] || { [ "$w" = 4xx ] && [[ "$code" == 4?? ]]; }; then ok=1; fi
  done
  if [ "$ok" != 1 ]; then
    problems+=("$name: HTTP $code (expected $want)")
  fi
}
body() { cat "$run/body"; }
expect_body() { # NAME EXPECTED
  if [ "$(body)" != "$2" ]; then problems+=("$1: body '$(body | head -c 200)' (expected '$2')"); fi
}

# A valid encrypted cookie value from the first round, replayed in later abuse requests.
valid_cookie=""
for round in $(seq 1 "$rounds"); do
  jar="$run/jar.$round"
  rm -f "$jar"
  c=(-b "$jar" -c "$jar")

  # Encrypted cookie store and actions.
  req 200 set "${c[@]}" "$base/set?note=round$round%0d%0a"
  req 200 get "${c[@]}" "$base/get"
  expect_body get "user=alice role=admin note=round$round%0d%0a status=valid"
  req 200 unset "${c[@]}" "$base/unset"
  req 200 get-after-unset "${c[@]}" "$base/get"
  expect_body get-after-unset "user=alice role= note=round$round%0d%0a status=valid"
  req 200 regenerate "${c[@]}" "$base/regenerate"
  req 200 cookie "${c[@]}" "$base/cookie?v=choc%20chip%3B%20x"
  req 200 uncookie "${c[@]}" "$base/uncookie"
  [ -z "$valid_cookie" ] && valid_cookie=$(awk '$6 == "session" { print $7 }' "$jar" | tail -1)

  # Signed cookie store.
  req 200 signed-set "${c[@]}" "$base/signed/set"
  req 200 signed-get "${c[@]}" "$base/signed/get"
  expect_body signed-get "user=bob status=valid"

  # session_require.
  req 302 private-anon -H 'Accept: text/html' "$base/private?x=$round"
  req 401 api-anon "$base/api"

  # Bad cookies: tampered, truncated, garbage, oversized, duplicated, wrong kind / name.
  if [ -n "$valid_cookie" ]; then
    tampered="${valid_cookie:0:20}$( [ "${valid_cookie:20:1}" = A ] && echo B || echo A )${valid_cookie:21}"
    req 200 bad-tampered -H "Cookie: session=$tampered" "$base/get"
    expect_body bad-tampered "user= role= note= status=invalid"
    req 200 bad-truncated -H "Cookie: session=${valid_cookie:0:$(( ${#valid_cookie} - 5 ))}" "$base/get"
    req 200 bad-duplicate -H "Cookie: session=$valid_cookie; session=$tampered" "$base/get"
    req 200 bad-wrong-name -H "Cookie: sig=$valid_cookie" "$base/signed/get"
  fi
  req 200 bad-garbage -H "Cookie: session=%%%\"\\;;=; session" "$base/get"
  req 401 bad-b64 -H "Cookie: session=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5" "$base/api"
  req 200 bad-huge -H "Cookie: session=$(head -c 6000 /dev/zero | tr '\0' A)" "$base/get"

  # Login: page (GET), wrong password, missing CSRF, right password with an unsafe and a safe next.
  req 200 login-page "${c[@]}" "$base/login?next=/private"
  token=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$run/body" | head -1)
  [ -n "$token" ] || problems+=("login-page: no csrf_token in the page")
  req 401 login-wrong "${c[@]}" --data-urlencode username=alice --data-urlencode "password=wrong" \
    --data-urlencode "csrf_token=$token" --data-urlencode next=/private "$base/login"
  req 4xx login-no-csrf "${c[@]}" --data-urlencode username=alice \
    --data-urlencode "password=$password" "$base/login"
  req 200 login-page-again "${c[@]}" "$base/login"
  token=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$run/body" | head -1)
  if (( round % 2 )); then next="//evil.example/"; else next="/private"; fi
  req 303 login-ok "${c[@]}" -D "$run/headers" --data-urlencode username=alice \
    --data-urlencode "password=$password" --data-urlencode "csrf_token=$token" \
    --data-urlencode "next=$next" "$base/login"
  want_loc=$([ "$next" = /private ] && echo /private || echo /get)
  grep -qi "^location: .*$want_loc" "$run/headers" ||
    problems+=("login-ok: Location is not $want_loc: $(grep -i '^location' "$run/headers" | tr -d '\r')")
  req 200 private-after-login "${c[@]}" "$base/private"
  expect_body private-after-login "private alice"
  req 200 api-after-login "${c[@]}" "$base/api"
  head -c 300 /dev/urandom >"$run/garbage"
  req 4xx login-garbage -b "$jar" --data-binary @"$run/garbage" "$base/login"

  # Logout and the end of the session.
  req 303 logout "${c[@]}" "$base/logout"
  req 401 api-after-logout "${c[@]}" "$base/api"
  req 200 clear "${c[@]}" "$base/clear"
  req 200 destroy "${c[@]}" "$base/destroy"
done

stop_nginx
trap - EXIT

echo "valgrind-run.sh: $requests requests, valgrind exit status $vg_rc"
[ "$stuck" = 1 ] && problems+=("nginx did not stop on SIGQUIT")
if grep -E '\[(alert|crit|emerg)\]' "$run/error.log" >"$run/bad-log-lines"; then
  problems+=("error.log has [alert]/[crit]/[emerg] lines: $(head -3 "$run/bad-log-lines")")
fi

# Classify valgrind's error blocks.
analysis=$(/usr/bin/python3 - "$vglog" "$root" <<'PY'
import re, sys
log, root = sys.argv[1], sys.argv[2]
lines = [re.sub(r"^==\d+== ?", "", l.rstrip("\n")) for l in open(log, errors="replace")]
blocks, cur = [], []
for l in lines:
    if l.strip() == "":
        if cur: blocks.append(cur); cur = []
    else:
        cur.append(l)
if cur: blocks.append(cur)

MODULE = re.compile(r"ngx_http_session|ngx_session|sess::|" + re.escape(root) + r"/src/")
INVALID = re.compile(r"^(Invalid (read|write|free)|Mismatched free|Source and destination overlap)")
UNINIT = re.compile(r"^(Conditional jump or move depends on uninitialised|Use of uninitialised value|Syscall param .* uninitialised)")
LEAK = re.compile(r"definitely lost in loss record")
fatal, info = [], []
for b in blocks:
    head = b[0]
    text = "\n".join(b)
    in_module = bool(MODULE.search(text))
    if INVALID.search(head):
        fatal.append(("invalid access", b))
    elif UNINIT.search(head):
        (fatal if in_module else info).append(("uninitialised value" + (" (module)" if in_module else ""), b))
    elif LEAK.search(head):
        (fatal if in_module else info).append(("definite leak" + (" (module)" if in_module else ""), b))
summary = [l for l in lines if l.startswith(("ERROR SUMMARY", "   definitely lost", "definitely lost", "LEAK SUMMARY"))]
for kind, b in fatal:
    print("FATAL " + kind)
    print("\n".join("    " + l for l in b[:45]))
for kind, b in info:
    print("INFO " + kind + " (not from the module)")
    print("\n".join("    " + l for l in b[:25]))
print("SUMMARY " + " | ".join(s.strip() for s in summary))
print("FATALCOUNT %d" % len(fatal))
PY
)
fatal_count=$(sed -n 's/^FATALCOUNT //p' <<<"$analysis")
grep -v '^FATALCOUNT' <<<"$analysis" | sed 's/^/valgrind-run.sh: /' | sed 's/^valgrind-run.sh:     /    /'

if [ "${fatal_count:-1}" != 0 ]; then
  problems+=("valgrind: $fatal_count error(s) from invalid accesses or in the module (see above, full log $vglog)")
fi
if ! grep -q 'ERROR SUMMARY' "$vglog"; then
  problems+=("valgrind did not finish its report (see $vglog)")
fi

if [ ${#problems[@]} -ne 0 ]; then
  echo "valgrind-run.sh: FAILED (run dir kept: $run)"
  printf '  - %s\n' "${problems[@]}"
  exit 1
fi
echo "valgrind-run.sh: passed: no invalid reads/writes, no definite leaks or uninitialised values from the module"
[ "${VG_KEEP:-0}" = 1 ] || rm -rf "$run"

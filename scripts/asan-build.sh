#!/usr/bin/env bash
# Builds nginx + this module with AddressSanitizer and UndefinedBehaviorSanitizer, from a COPY of
# the nginx source, so the normal build (build/sbin/nginx) is untouched; then checks that the
# binary starts and serves a session round trip without a sanitizer report.
#
#   scripts/asan-build.sh [BUILD_DIR] [--no-smoke]   default BUILD_DIR: build/asan
#   scripts/asan-build.sh BUILD_DIR --pytest [ARGS]  build, then run the integration suite (t/)
#                                                    against it and fail on any sanitizer report
#
# Result: BUILD_DIR/sbin/nginx (prefix BUILD_DIR). The nginx source copy and its objects are in
# BUILD_DIR/src/nginx-<version>; re-running rebuilds incrementally.
#
# Environment:
#   NGINX_VERSION   nginx source version (default: Debian's nginx-common version, else 1.22.1);
#                   taken from build/src/nginx-<version>, fetched by scripts/fetch-nginx.sh if absent
#   ASAN_CC         C compiler (default clang-14, else cc; config.make picks the matching C++
#                   compiler for the module: clang++-14 / g++). With gcc, UBSan reports ignore
#                   log_path and end up in nginx's error log instead (grep "runtime error:").
#
# The module's C++ objects get nginx's CFLAGS through config.make (minus C-only flags, plus
# -std=c++17), so -fsanitize=address,undefined from --with-cc-opt reaches them.
#
# How the test suite uses it (`make test-asan`):
#
#   scripts/asan-build.sh build/asan
#   reports=$PWD/build/asan/reports; rm -rf "$reports"; mkdir -p "$reports"
#   NGINX_BIN=build/asan/sbin/nginx \
#   ASAN_OPTIONS=detect_leaks=0:log_path=$reports/asan \
#   UBSAN_OPTIONS=print_stacktrace=1:suppressions=$PWD/build/asan/ubsan.supp:log_path=$reports/ubsan \
#     /usr/bin/python3 -m pytest -q t
#   if ls "$reports"/asan.* "$reports"/ubsan.* >/dev/null 2>&1; then cat "$reports"/*; exit 1; fi
#
# (or simply: scripts/asan-build.sh build/asan --pytest -q). detect_leaks=0: nginx frees its
# pools wholesale and exits without freeing cycle memory, which LeakSanitizer reports as leaks at
# exit; leaks are checked by scripts/valgrind-run.sh instead. log_path makes every process
# (master and workers, whose stderr is /dev/null after daemonising or goes to nginx's own log)
# write its report to <log_path>.<pid>; the run fails if any such file exists.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=build/asan
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
  build_dir=$1
  shift
fi
smoke=1
pytest_args=()
run_pytest=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-smoke) smoke=0; shift ;;
    --pytest) run_pytest=1; shift; pytest_args=("$@"); break ;;
    *) echo "asan-build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)

version=${NGINX_VERSION:-$(dpkg-query -W -f='${Version}' nginx-common 2>/dev/null | sed 's/-.*//' || true)}
version=${version:-1.22.1}
orig="$root/build/src/nginx-$version"
if [ ! -x "$orig/configure" ]; then
  scripts/fetch-nginx.sh "$version" "$root/build/src"
fi

# clang by default: with gcc 12, UBSan reports of an ASan+UBSan binary ignore log_path and go to
# stderr, which nginx redirects into its error log; with clang they land in log_path files.
if [ -n "${ASAN_CC:-}" ]; then
  cc=$ASAN_CC
elif command -v clang-14 >/dev/null; then
  cc=clang-14
else
  cc=cc
fi
san='-fsanitize=address,undefined'
cc_opt="$san -fno-omit-frame-pointer -g -O1"
ld_opt="$san"
# nginx links with the C driver; clang then leaves out UBSan's C++ part (vptr checks of the
# module's C++ objects), so ask for it explicitly.
case "$("$cc" --version 2>/dev/null | head -1)" in
  *clang*) ld_opt="$ld_opt -fsanitize-link-c++-runtime -lstdc++" ;;
esac
configure_args=(
  --with-cc="$cc"
  --with-cc-opt="$cc_opt"
  --with-ld-opt="$ld_opt"
  --with-debug --with-threads --with-http_ssl_module --with-http_auth_request_module
  --with-http_stub_status_module
  --add-module="$root"
  --prefix="$build_dir"
)

src="$build_dir/src/nginx-$version"
stamp="$build_dir/src/.configure-args"
want=$(printf '%s\n' "${configure_args[@]}")
if [ ! -f "$src/Makefile" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] ||
   [ "$root/config" -nt "$src/Makefile" ] || [ "$root/config.make" -nt "$src/Makefile" ] ||
   [ "$root/src/core/SOURCES" -nt "$src/Makefile" ]; then
  echo "asan-build.sh: copying $orig -> $src"
  rm -rf "$src"
  mkdir -p "$build_dir/src"
  cp -a "$orig" "$src"
  rm -rf "$src/objs" "$src/Makefile"
  echo "asan-build.sh: configuring ($cc, $cc_opt)"
  (cd "$src" && ./configure "${configure_args[@]}") >"$build_dir/src/configure.log" 2>&1 || {
    tail -30 "$build_dir/src/configure.log"
    echo "asan-build.sh: configure failed, see $build_dir/src/configure.log" >&2
    exit 1
  }
  echo "$want" >"$stamp"
fi

echo "asan-build.sh: building"
make -C "$src" -j"$(nproc)" >"$build_dir/src/make.log" 2>&1 || {
  grep -E 'error|Error' "$build_dir/src/make.log" | head -30
  echo "asan-build.sh: build failed, see $build_dir/src/make.log" >&2
  exit 1
}
make -C "$src" install >/dev/null
bin="$build_dir/sbin/nginx"
"$bin" -V 2>&1 | sed -n 1p  # not head: with pipefail, nginx's SIGPIPE would fail the script
# Both nginx and the module's C++ objects must carry the instrumentation (grep without -q: with
# pipefail, an early grep exit would make nm fail on SIGPIPE).
if ! nm -D "$bin" 2>/dev/null | grep __asan_init >/dev/null; then
  echo "asan-build.sh: $bin is not linked with ASan" >&2
  exit 1
fi
for obj in "$src"/objs/addon/session/src_*.o; do
  if ! nm "$obj" | grep __asan_report >/dev/null || ! nm "$obj" | grep __ubsan_handle >/dev/null; then
    echo "asan-build.sh: $obj is not instrumented with ASan and UBSan" >&2
    exit 1
  fi
done

# UBSan findings inside nginx itself that would otherwise fail every run. Used as
# UBSAN_OPTIONS=suppressions=BUILD_DIR/ubsan.supp. Patterns match the source file of the faulting
# code: nginx's own files are compiled with relative paths ("src/http/..."), this module's from
# the absolute --add-module path ("/.../src/ngx_http_session_*.cpp", "/.../src/core/*.cpp"), so
# "^src/" can never hide a finding in the module. Only two harmless-in-practice classes are
# suppressed, and only in nginx's sources (plus one alignment finding in nginx's parser); every
# other check stays on everywhere:
#   nonnull-attribute  memcpy(dst, NULL, 0), e.g. ngx_pstrdup() of the empty -g parameter in
#                      ngx_init_cycle() (src/core/ngx_string.c)
#   pointer-overflow   NULL + offset, e.g. ngx_http_script_add_code() rebasing the NULL sc->main
#                      pointer of every complex value (src/http/ngx_http_script.c), and
#                      ngx_http_send_response() for `return CODE "<empty value>"`
#                      (src/http/ngx_http_core_module.c)
#   alignment          ngx_http_parse_request_line() reads the method as a 4-byte word from
#                      any offset of the buffer (ngx_str3_cmp etc. on x86, where nginx enables
#                      unaligned access on purpose); seen with pipelined requests
#                      (src/http/ngx_http_parse.c only)
cat >"$build_dir/ubsan.supp" <<'SUPP'
nonnull-attribute:^src/
pointer-overflow:^src/
alignment:^src/http/ngx_http_parse.c
SUPP
ubsan_opts="print_stacktrace=1:suppressions=$build_dir/ubsan.supp"

# Runs nginx in PREFIX with ASan/UBSan reports collected into PREFIX/reports; prints the reports
# and fails if there are any.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

check_reports() { # dir [error logs...]: fails if there is any report file or report line
  local dir=$1 f found=0
  shift
  for f in "$dir"/asan.* "$dir"/ubsan.*; do
    [ -f "$f" ] || continue
    found=1
    echo "--- $f" >&2
    head -60 "$f" >&2
  done
  # gcc's UBSan (and anything a sanitizer prints before log_path applies) goes to stderr, which
  # nginx redirects into its error log.
  for f in "$@"; do
    [ -f "$f" ] || continue
    if grep -E 'runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$f" >&2; then
      found=1
      echo "--- (in $f)" >&2
    fi
  done
  [ "$found" = 0 ]
}

if [ "$smoke" = 1 ]; then
  prefix=$(mktemp -d "$build_dir/smoke.XXXXXX")
  reports="$prefix/reports"
  mkdir -p "$prefix/logs" "$reports"
  port=$(free_port)
  head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48 >"$prefix/secret"
  echo >>"$prefix/secret"
  user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$prefix/nginx.conf" <<CONF
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log info;
events { worker_connections 64; }
http {
    access_log $prefix/access.log;
    client_body_temp_path $prefix/tmp_body;
    proxy_temp_path $prefix/tmp_proxy;
    fastcgi_temp_path $prefix/tmp_fastcgi;
    uwsgi_temp_path $prefix/tmp_uwsgi;
    scgi_temp_path $prefix/tmp_scgi;
    session_secret_file $prefix/secret;
    server {
        listen 127.0.0.1:$port;
        location = /set    { session_set user alice; session_set n 42; return 200 "set\n"; }
        location = /get    { return 200 "user=\$session_user n=\$session_n status=\$session_status\n"; }
        location = /signed     { session_encrypt off; session_cookie sig; session_set user bob; return 200 "ok\n"; }
        location = /signed/get { session_encrypt off; session_cookie sig; return 200 "\$session_user \$session_status\n"; }
        location = /cookie { cookie_set flavour "choc chip"; return 200 "ok\n"; }
        location = /clear  { session_clear; return 200 "cleared\n"; }
    }
}
CONF
  echo "asan-build.sh: smoke test on 127.0.0.1:$port"
  ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan" \
  UBSAN_OPTIONS="$ubsan_opts:log_path=$reports/ubsan" \
    "$bin" -p "$prefix/" -c "$prefix/nginx.conf" </dev/null >"$prefix/stdout" 2>"$prefix/stderr" &
  pid=$!
  ok=0
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/get"; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail=""
  if [ "$ok" != 1 ]; then
    fail="nginx did not start"
  else
    jar="$prefix/jar"
    c() { curl -s -m 10 -b "$jar" -c "$jar" "$@"; }
    c "http://127.0.0.1:$port/set" >/dev/null
    got=$(c "http://127.0.0.1:$port/get")
    [ "$got" = "user=alice n=42 status=valid" ] || fail="round trip: got '$got'"
    got=$(curl -s -m 10 -H 'Cookie: session=AAAA.tampered' "http://127.0.0.1:$port/get")
    [ "$got" = "user= n= status=invalid" ] || fail="${fail:+$fail; }bad cookie: got '$got'"
    c "http://127.0.0.1:$port/signed" >/dev/null
    got=$(c "http://127.0.0.1:$port/signed/get")
    [ "$got" = "bob valid" ] || fail="${fail:+$fail; }signed store: got '$got'"
    c "http://127.0.0.1:$port/cookie" >/dev/null
    c "http://127.0.0.1:$port/clear" >/dev/null
    got=$(c "http://127.0.0.1:$port/get")
    [ "$got" = "user= n= status=valid" ] || [ "$got" = "user= n= status=none" ] ||
      fail="${fail:+$fail; }after clear: got '$got'"
  fi
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fail="${fail:+$fail; }nginx did not stop on SIGQUIT"; fi
  wait "$pid" 2>/dev/null || true
  if grep -E '\[(alert|crit|emerg)\]' "$prefix/error.log" >&2; then
    fail="${fail:+$fail; }bad lines in error.log"
  fi
  check_reports "$reports" "$prefix/error.log" "$prefix/stderr" || fail="${fail:+$fail; }sanitizer reports"
  if [ -n "$fail" ]; then
    echo "asan-build.sh: smoke test FAILED: $fail (prefix kept: $prefix)" >&2
    exit 1
  fi
  rm -rf "$prefix"
  echo "asan-build.sh: smoke test passed (session round trip, bad cookie, signed store, cookie_set, clear; no sanitizer report)"
fi

if [ "$run_pytest" = 1 ]; then
  reports="$build_dir/reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  rc=0
  NGINX_BIN="$bin" \
  ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan" \
  UBSAN_OPTIONS="$ubsan_opts:log_path=$reports/ubsan" \
    /usr/bin/python3 -m pytest "${pytest_args[@]}" t || rc=$?
  check_reports "$reports" || rc=1
  exit "$rc"
fi

#!/usr/bin/env bash
# `make bench`: wrk against build/sbin/nginx on 127.0.0.1, scenarios alternated round by round,
# medians reported; results in build/bench/ (results.md, results.json, rps.png).
#
#   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_MEM_REQUESTS=1000000 scripts/bench.sh
#
# Other knobs: BENCH_THREADS (1), BENCH_CONNECTIONS (50), BENCH_SCENARIOS (comma list, e.g.
# redis_tls,redis_cluster for the TLS and Cluster Redis scenarios alone), BENCH_TLS_RATE,
# BENCH_TLS_ROUNDS (5), BENCH_TLS_DURATION (3), NGINX_BIN. See scripts/bench.py for what is
# measured. Exit status: 0 when the report was written (targets met or not), non-zero when the
# harness failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$root/build/bench/run/pids"
py_pid=

cleanup() {
  local rc=$?
  if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
  fi
  # Whatever bench.py started and could not stop itself (nginx master, redis-server).
  if [ -f "$pidfile" ]; then
    while read -r pid; do
      if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
      case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
        *nginx*|*redis-server*) kill -TERM "$pid" 2>/dev/null || true ;;
      esac
    done <"$pidfile"
    rm -f "$pidfile"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# valgrind (instruction counts) and perf (user-mode CPU samples); idempotent
BOOTSTRAP_EXTRA="${BOOTSTRAP_EXTRA:-} bench" "$root/scripts/bootstrap.sh"

/usr/bin/python3 "$root/scripts/bench.py" "$@" &
py_pid=$!
wait "$py_pid"

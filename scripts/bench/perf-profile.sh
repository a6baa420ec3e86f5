#!/usr/bin/env bash
# Where the cookie check's CPU goes, by time rather than instructions: the nginx worker's
# user-mode CPU sampled by perf (cpu-clock:u) while wrk sends a valid encrypted session cookie to
# the session_require + $session_user server of scripts/bench/profile.conf.in, and the same
# request to its baseline server (module compiled in, unused), rounds alternated.
#
# The callgrind profile (profile.sh) counts instructions; this one shows what they cost on this
# machine, cache misses included: per function, nanoseconds of user-mode CPU per request in
# each server and the difference. A sample due while the kernel runs with interrupts off lands
# on the first user instruction after the system call (writev, recv, epoll_wait in libc): those
# rows carry some kernel time, the same for both servers.
#
# Writes build/bench/perf-profile.txt.
#
#   scripts/bench/perf-profile.sh       PERF_ROUNDS=4 rounds x PERF_SECONDS=5 s per server,
#                                       PERF_PERIOD_NS=250000 (4 kHz of the worker's running time)
#   NGINX_BIN=...                       another binary (default build/sbin/nginx)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/bench"
prefix="$out/perf-profile"
nginx_src=${NGINX_BIN:-$root/build/sbin/nginx}
rounds=${PERF_ROUNDS:-4}
seconds=${PERF_SECONDS:-5}
period=${PERF_PERIOD_NS:-250000}
ngx_pid=

for tool in perf wrk curl; do
  command -v "$tool" >/dev/null || {
    echo "perf-profile: $tool not found (BOOTSTRAP_EXTRA=bench scripts/bootstrap.sh)" >&2; exit 1; }
done
[ -x "$nginx_src" ] || { echo "perf-profile: $nginx_src is missing, run make nginx" >&2; exit 1; }

stop() {
  if [ -n "$ngx_pid" ] && kill -0 "$ngx_pid" 2>/dev/null; then
    kill -QUIT "$ngx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ngx_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ngx_pid" 2>/dev/null || true
  fi
  ngx_pid=
}
trap stop EXIT
trap 'exit 130' INT TERM HUP

. "$root/scripts/bench/profile-setup.sh"
profile_setup "$nginx_src"
mkdir -p "$prefix/samples"

# one process (master_process off): the pid perf follows is the one serving the requests
"$nginx_src" -p "$prefix/" -c "$prefix/nginx.conf" >"$prefix/nginx.stdout" 2>&1 &
ngx_pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port_base/" 2>/dev/null && break
  kill -0 "$ngx_pid" 2>/dev/null || { echo "perf-profile: nginx exited" >&2; exit 1; }
  sleep 0.1
done

cookie=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/set" | tr -d '\r' |
  sed -n 's/^[Ss]et-[Cc]ookie: \(session=[^;]*\).*/\1/p' | head -1)
[ -n "$cookie" ] || { echo "perf-profile: no session cookie from /set" >&2; exit 1; }
body=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$port_req/")
[ "$body" = "ok alice" ] || { echo "perf-profile: cookie not accepted: $body" >&2; exit 1; }

for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then order="baseline:$port_base require:$port_req"
  else order="require:$port_req baseline:$port_base"; fi
  for item in $order; do
    name=${item%%:*} p=${item#*:}
    data="$prefix/samples/$name.$i.data"
    perf record -q -e cpu-clock:u -c "$period" -p "$ngx_pid" -o "$data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.3
    n=$(timeout $((seconds + 30)) wrk -t1 -c50 -d"${seconds}s" -H "Cookie: $cookie" \
          "http://127.0.0.1:$p/" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "perf-profile: no requests to $name" >&2; exit 1; }
    echo "$n" >"$data.requests"
    echo "perf-profile: round $i/$rounds $name: $n requests"
  done
done
stop

/usr/bin/python3 - "$prefix/samples" "$rounds" "$period" "$seconds" "$out/perf-profile.txt" <<'PY'
import glob, re, subprocess, sys
from collections import defaultdict

samples, rounds, period, seconds, dest = sys.argv[1:6]
period = int(period)


def load(name):
    """{symbol: samples} summed over the rounds, and the requests served meanwhile."""
    syms, reqs = defaultdict(int), 0
    for data in sorted(glob.glob(f"{samples}/{name}.*.data")):
        reqs += int(open(data + ".requests").read())
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "sym",
                              "-F", "sample,sym"], capture_output=True, text=True,
                             check=True).stdout
        for line in rep.splitlines():
            m = re.match(r"^\s*(\d+)\s+\[\.\]\s+(.*?)\s*$", line)
            if m:
                syms[m.group(2)] += int(m.group(1))
    return {k: v * period / reqs for k, v in syms.items()}, reqs   # ns per request


base, nb = load("baseline")
req, nr = load("require")
out = []
add = out.append
add("perf cpu-clock:u profile (user-mode CPU, sampled): the encrypted cookie store's")
add('session_require + `return 200 "ok $session_user\\n"` server against the baseline server')
add("(module unused), both receiving the same valid session cookie; one nginx process,")
add(f"wrk -t1 -c50, {rounds} rounds x {seconds} s per server alternated, a sample every "
    f"{period / 1e3:g} µs of the worker's running time")
add("")
tb, tr = sum(base.values()), sum(req.values())
add(f"baseline: {nb:,} requests, {tb:,.0f} ns of user-mode CPU per request")
add(f"require:  {nr:,} requests, {tr:,.0f} ns of user-mode CPU per request")
add(f"added:    {tr - tb:+,.0f} ns per request (closed loop: noisier than make bench's paired "
    "runs)")
add("")
add("per function, ns of user-mode CPU per request (largest differences first):")
add(f"{'added':>8} {'require':>8} {'baseline':>8}  function")
diff = sorted(((req.get(k, 0) - base.get(k, 0), k) for k in set(base) | set(req)),
              reverse=True)
for d, k in diff[:30]:
    add(f"{d:+8.1f} {req.get(k, 0):8.1f} {base.get(k, 0):8.1f}  {k[:100]}")
add("  ...")
for d, k in diff[-8:]:
    add(f"{d:+8.1f} {req.get(k, 0):8.1f} {base.get(k, 0):8.1f}  {k[:100]}")
add("")
mod = [k for k in set(base) | set(req) if "sess" in k]
add(f"the module's own functions (ngx_session::, sess::): {sum(req.get(k, 0) for k in mod):,.0f} "
    f"ns per request in require, {sum(base.get(k, 0) for k in mod):,.0f} in baseline "
    "(its phase handlers and filters run in every server)")
for k in sorted(mod, key=lambda k: -req.get(k, 0))[:15]:
    add(f"  {req.get(k, 0):7.1f} {base.get(k, 0):7.1f}  {k[:100]}")
open(dest, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY

#!/usr/bin/env bash
# Instruction profile of the cookie hot path (valid session, `return 200 "ok $session_user\n"`)
# against the baseline server (module compiled in, unused), all receiving the same request headers
# (the session cookie included): the encrypted store, the encrypted store behind session_require
# (issue 11's figure) and the signed store.
#
# nginx runs as one process (master_process off, daemon off) under valgrind --tool=callgrind;
# instrumentation is switched on only after start-up and a warm-up, then for exactly
# PROFILE_REQUESTS keep-alive requests to each server in turn (a dump after each). Requests come
# from curl URL globbing on one connection each, so the count is exact and the run bounded
# (timeout). The same cookie value is sent on every request: with the verified-cookie table
# (README "Performance") this is the repeat case; the first (warm-up) request verifies it.
#
# Writes build/bench/profile.txt: instructions per request for each server and what the module
# adds; for the encrypted server the top functions by self and inclusive instruction count, the
# largest per-function differences, per-object totals. The raw callgrind files stay in
# build/bench/profile/.
#
#   scripts/bench/profile.sh            PROFILE_REQUESTS=20000, PROFILE_WARMUP=500
#   NGINX_BIN=...                       another binary (default build/sbin/nginx)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/bench"
prefix="$out/profile"
nginx_src=${NGINX_BIN:-$root/build/sbin/nginx}
requests=${PROFILE_REQUESTS:-20000}
warmup=${PROFILE_WARMUP:-500}
vg_pid=

for tool in valgrind callgrind_annotate callgrind_control curl; do
  command -v "$tool" >/dev/null || { echo "profile: $tool not found" >&2; exit 1; }
done
[ -x "$nginx_src" ] || { echo "profile: $nginx_src is missing, run make nginx" >&2; exit 1; }

stop() {
  if [ -n "$vg_pid" ] && kill -0 "$vg_pid" 2>/dev/null; then
    # graceful, then fast shutdown (both let valgrind write its output), then KILL
    kill -QUIT "$vg_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$vg_pid" 2>/dev/null || break; sleep 0.2; done
    kill -TERM "$vg_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$vg_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$vg_pid" 2>/dev/null || true
  fi
  vg_pid=
}
trap stop EXIT
trap 'exit 130' INT TERM HUP

. "$root/scripts/bench/profile-setup.sh"
profile_setup "$nginx_src"
cp "$nginx_src" "$prefix/nginx"

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$prefix/callgrind.out" \
  --vgdb=yes --log-file="$prefix/valgrind.log" \
  "$prefix/nginx" -p "$prefix/" -c "$prefix/nginx.conf" >"$prefix/nginx.stdout" 2>&1 &
vg_pid=$!
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  if ! kill -0 "$vg_pid" 2>/dev/null; then
    echo "profile: nginx under valgrind exited" >&2; cat "$prefix/valgrind.log" >&2; exit 1
  fi
  sleep 0.2
done

get_cookie() {  # get_cookie PORT
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/set" | tr -d '\r' |
    sed -n 's/^[Ss]et-[Cc]ookie: \(session=[^;]*\).*/\1/p' | head -1
}
cookie=$(get_cookie "$port")
cookie_signed=$(get_cookie "$port_signed")
[ -n "$cookie" ] && [ -n "$cookie_signed" ] ||
  { echo "profile: no session cookie from /set" >&2; exit 1; }
for check in "$port $cookie" "$port_req $cookie" "$port_signed $cookie_signed"; do
  set -- $check
  body=$(curl -s -H "Cookie: $2" "http://127.0.0.1:$1/")
  [ "$body" = "ok alice" ] || { echo "profile: cookie not accepted on $1: $body" >&2; exit 1; }
done

# N sequential requests on one keep-alive connection -> "count status" lines.
run() {  # run PORT N [COOKIE]
  timeout 1200 curl -s -H "Cookie: ${3:-$cookie}" -o /dev/null -w '%{http_code}\n' \
    "http://127.0.0.1:$1/?n=[1-$2]" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}'
}
run "$port_base" "$warmup" >/dev/null
run "$port" "$warmup" >/dev/null
run "$port_req" "$warmup" >/dev/null
run "$port_signed" "$warmup" "$cookie_signed" >/dev/null

callgrind_control -i on "$vg_pid" >/dev/null
t0=$(date +%s.%N)
st_base=$(run "$port_base" "$requests")
t1=$(date +%s.%N)
callgrind_control --dump=baseline "$vg_pid" >/dev/null        # writes a part, zeroes counters
st_enc=$(run "$port" "$requests")
t2=$(date +%s.%N)
callgrind_control --dump=encrypted "$vg_pid" >/dev/null
st_req=$(run "$port_req" "$requests")
callgrind_control --dump=require "$vg_pid" >/dev/null
st_signed=$(run "$port_signed" "$requests" "$cookie_signed")
callgrind_control -i off "$vg_pid" >/dev/null
stop

parts=($(ls "$prefix"/callgrind.out.* | sort -t. -k3 -n))   # the --dump parts, in order
if [ "${#parts[@]}" -ne 3 ] || [ ! -s "$prefix/callgrind.out" ]; then
  echo "profile: callgrind output missing in $prefix" >&2; ls -l "$prefix" >&2; exit 1
fi
mv "${parts[0]}" "$prefix/callgrind.baseline.out"
mv "${parts[1]}" "$prefix/callgrind.encrypted.out"
mv "${parts[2]}" "$prefix/callgrind.require.out"
mv "$prefix/callgrind.out" "$prefix/callgrind.signed.out"

/usr/bin/python3 - "$prefix" "$requests" "$warmup" "$st_base" "$st_enc" "$t0" "$t1" "$t2" \
    "$out/profile.txt" "$st_req" "$st_signed" <<'PY'
import re, subprocess, sys
from collections import defaultdict

prefix, n, warmup, st_base, st_enc, t0, t1, t2, dest, st_req, st_signed = sys.argv[1:12]
n = int(n)
w_base, w_enc = float(t1) - float(t0), float(t2) - float(t1)


def obj_of(file, obj):
    if obj:
        return obj.rsplit("/", 1)[-1]
    # inlined code (headers) is reported without an object: attribute ours/nginx's to nginx
    if file.startswith(("build/", "src/", "/work/", "/usr/include/rapidjson",
                        "/usr/include/c++")):
        return "nginx"
    return "?"


def annotate(path, inclusive):
    """{function: (Ir, object)} and the program total. Rows of one function spread over several
    files (inlined headers) are summed for self cost; for inclusive cost the largest is kept."""
    r = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", "--show-percs=no",
                        f"--inclusive={'yes' if inclusive else 'no'}", path],
                       capture_output=True, text=True, check=True)
    total, funcs = None, {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"^\s*([\d,]+)\s+(?:\*\s+)?([^:\s][^:]*):(.+?)(?:\s+\[([^\]]*)\])?$", line)
        if not m or total is None:
            continue
        ir, file, fn, obj = int(m.group(1).replace(",", "")), m.group(2), m.group(3), m.group(4)
        o = obj_of(file, obj or "")
        if fn in funcs:
            old, oo = funcs[fn]
            funcs[fn] = ((max(old, ir) if inclusive else old + ir), oo if oo != "?" else o)
        else:
            funcs[fn] = (ir, o)
    if total is None:
        raise SystemExit(f"no PROGRAM TOTALS in {path}")
    if not inclusive:
        # The summary line of a part written after a --dump can be garbage (seen with valgrind
        # 3.19: a wrapped negative); the self costs of all functions add up to the real total.
        total = sum(ir for ir, _ in funcs.values())
    return total, funcs


def short(fn, width=100):
    fn = re.sub(r"std::__cxx11::basic_string<char, std::char_traits<char>, "
                r"std::pmr::polymorphic_allocator<char> >", "pmr::string", fn)
    fn = re.sub(r"std::basic_string_view<char, std::char_traits<char> >", "string_view", fn)
    fn = re.sub(r"rapidjson::UTF8<char>", "UTF8", fn)
    fn = re.sub(r"rapidjson::GenericInsituStringStream<UTF8 >", "InsituStream", fn)
    return fn if len(fn) <= width else fn[:width - 1] + "…"


tb, sb = annotate(f"{prefix}/callgrind.baseline.out", False)
te, se = annotate(f"{prefix}/callgrind.encrypted.out", False)
_, ie = annotate(f"{prefix}/callgrind.encrypted.out", True)
tr, _ = annotate(f"{prefix}/callgrind.require.out", False)
ts, _ = annotate(f"{prefix}/callgrind.signed.out", False)

out = []
add = out.append
add("callgrind profile (instructions, Ir): cookie store with a valid session,")
add('`return 200 "ok $session_user\\n"`, against the baseline server (module unused) receiving')
add("the same request (session cookie included). nginx single process, instrumentation on only")
add(f"for the measured requests (after {warmup} warm-up requests per server), one keep-alive")
add("connection, curl as the client, the same cookie value on every request.")
add("")
add(f"requests: {n} per server; statuses baseline {st_base}; encrypted {st_enc}; "
    f"require {st_req}; signed {st_signed}")
add(f"baseline : {tb:>14,} Ir = {tb / n:8,.0f} Ir/request  ({w_base:.1f} s under callgrind)")
add(f"encrypted: {te:>14,} Ir = {te / n:8,.0f} Ir/request  ({w_enc:.1f} s under callgrind)")
add(f"added by the module: {(te - tb) / n:,.0f} Ir/request = {(te - tb) / tb * 100:.1f}% over "
    f"baseline (instructions only: cache misses and syscalls are not in this number)")
add("")
add("added per request over the baseline (Ir/request):")
add(f"  encrypted, $session_user                     {(te - tb) / n:+8,.0f}")
add(f"  encrypted, session_require + $session_user   {(tr - tb) / n:+8,.0f}")
add(f"  signed, $session_user                        {(ts - tb) / n:+8,.0f}")
add("")

by_obj = defaultdict(lambda: [0, 0])
for fn, (ir, o) in sb.items():
    by_obj[o][0] += ir
for fn, (ir, o) in se.items():
    by_obj[o][1] += ir
add("Ir/request by object (self cost):")
add(f"  {'baseline':>10} {'encrypted':>10} {'added':>9}  object")
for o, (b, e) in sorted(by_obj.items(), key=lambda x: -x[1][1]):
    if max(b, e) / n >= 5:
        add(f"  {b / n:10,.0f} {e / n:10,.0f} {(e - b) / n:+9,.0f}  {o}")
add("")

add("encrypted: top 30 functions by self instructions (share of the encrypted run's total)")
add(f"  {'share':>6} {'Ir/req':>8}  function [object]")
for fn, (ir, o) in sorted(se.items(), key=lambda x: -x[1][0])[:30]:
    add(f"  {ir / te * 100:5.2f}% {ir / n:8,.0f}  {short(fn)} [{o}]")
add("")

diff = []
for fn in set(se) | set(sb):
    e = se.get(fn, (0, None))
    b = sb.get(fn, (0, None))
    diff.append((e[0] - b[0], fn, e[1] or b[1]))
diff.sort(key=lambda x: -x[0])
add("what the module adds: top 30 functions by self-Ir difference (encrypted − baseline),")
add("share = of the added instructions")
add(f"  {'share':>6} {'Ir/req':>8}  function [object]")
for d, fn, o in diff[:30]:
    if d <= 0:
        break
    add(f"  {d / (te - tb) * 100:5.1f}% {d / n:+8,.0f}  {short(fn)} [{o}]")
add("")

add("encrypted: top 40 functions by inclusive instructions (self + callees)")
add(f"  {'share':>6} {'Ir/req':>8}  function [object]")
for fn, (ir, o) in sorted(ie.items(), key=lambda x: -x[1][0])[:40]:
    add(f"  {ir / te * 100:5.1f}% {ir / n:8,.0f}  {short(fn)} [{o}]")
open(dest, "w").write("\n".join(out) + "\n")
PY
cat "$out/profile.txt"
echo "profile: raw data in $prefix/callgrind.{baseline,encrypted,require,signed}.out" \
     "(try callgrind_annotate --inclusive=yes --tree=calling)"

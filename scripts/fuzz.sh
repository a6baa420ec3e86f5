#!/usr/bin/env bash
# libFuzzer runs over every parser of the pure C++ core (src/core), with ASan + UBSan.
#
#   scripts/fuzz.sh [FUZZ_TIME]   build every fuzz/fuzz_*.cpp target into build/fuzz/ and run each
#                                 for FUZZ_TIME seconds (default 60); exit 1 on any crash,
#                                 property failure, leak, timeout or OOM, printing the reproducer
#   scripts/fuzz.sh --build-only  only build the targets
#   scripts/fuzz.sh --gen-seeds   rebuild the corpora gen_seeds.cpp writes (committed output;
#                                 only needed when a target's input format changes)
#
# Environment:
#   FUZZ_TARGETS="cookie envelope"  run a subset (names without the fuzz_ prefix)
#   FUZZ_CXX=clang++-14             the compiler (needs libFuzzer: libclang-rt-14-dev)
#   FUZZ_FRESH=1                    start from the seed corpus only (default: keep what earlier
#                                   runs found in build/fuzz/corpus/<target>)
#
# The repo is never written by a run: each target fuzzes build/fuzz/corpus/<target>, which is
# seeded from fuzz/corpus/<target>. Crash inputs go to build/fuzz/artifacts/<target>/, logs to
# build/fuzz/logs/<target>.log. Reproduce one with:  build/fuzz/fuzz_<target> <artifact>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=run
fuzz_time=60
case "${1:-}" in
  --build-only) mode=build ;;
  --gen-seeds) mode=seeds ;;
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  "") ;;
  *)
    if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -eq 0 ]; then
      echo "fuzz.sh: FUZZ_TIME must be a positive number of seconds, got '$1'" >&2
      exit 2
    fi
    fuzz_time=$1
    ;;
esac

cxx=${FUZZ_CXX:-clang++-14}
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz.sh: $cxx not found (apt-get install -y clang-14 libfuzzer-14-dev libclang-rt-14-dev)" >&2
  exit 2
fi

out=build/fuzz
objdir=$out/obj
mkdir -p "$objdir" "$out/logs"

common_flags=(-std=c++17 -g -O1 -fno-sanitize-recover=undefined -Isrc/core)
obj_flags=("${common_flags[@]}" -fsanitize=fuzzer-no-link,address,undefined)
link_flags=("${common_flags[@]}" -fsanitize=fuzzer,address,undefined)
libs=(-lssl -lcrypto -lcrypt -lz -lmsgpackc)

mapfile -t core_srcs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' src/core/SOURCES | sed 's#^#src/core/#')
core_hdrs=(src/core/*.h)

# Rebuild everything when the compiler or the flags change.
stamp="$objdir/flags"
want="$cxx ${obj_flags[*]} | ${link_flags[*]} ${libs[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -f "$objdir"/*.o "$out"/fuzz_*
  echo "$want" >"$stamp"
fi

# True if $1 is missing or older than any of the following files.
stale() {
  local target=$1
  shift
  [ -e "$target" ] || return 0
  local f
  for f in "$@"; do
    [ "$f" -nt "$target" ] && return 0
  done
  return 1
}

# Core objects, compiled once (in parallel) with coverage instrumentation but without main.
core_objs=()
pids=()
for src in "${core_srcs[@]}"; do
  obj="$objdir/$(basename "${src%.cpp}").o"
  core_objs+=("$obj")
  if stale "$obj" "$src" "${core_hdrs[@]}" "$stamp"; then
    echo "fuzz.sh: CXX $src"
    "$cxx" "${obj_flags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$(nproc)" ]; then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

if [ "$mode" = seeds ]; then
  gen=$out/gen_seeds
  "$cxx" -std=c++17 -g -O1 -Isrc/core fuzz/gen_seeds.cpp "${core_srcs[@]}" "${libs[@]}" -o "$gen"
  rm -rf fuzz/corpus.new
  mkdir -p fuzz/corpus.new
  "$gen" fuzz/corpus.new
  # Only the targets gen_seeds writes are replaced: hand-written corpora of the other targets
  # (cookie_attrs, origin, resp, cluster, ...) stay.
  for d in fuzz/corpus.new/*/; do
    t=$(basename "$d")
    rm -rf "fuzz/corpus/$t"
    mkdir -p fuzz/corpus
    mv "$d" "fuzz/corpus/$t"
  done
  rm -rf fuzz/corpus.new
  for d in fuzz/corpus/*/; do
    printf 'fuzz.sh: %-14s %3d seeds\n' "$(basename "$d")" "$(ls -1 "$d" | wc -l)"
  done
  exit 0
fi

# Targets.
all_targets=()
for f in fuzz/fuzz_*.cpp; do
  t=$(basename "$f" .cpp)
  all_targets+=("${t#fuzz_}")
done
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
  for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_$t.cpp" ] || { echo "fuzz.sh: no target fuzz/fuzz_$t.cpp" >&2; exit 2; }
  done
else
  targets=("${all_targets[@]}")
fi

for t in "${targets[@]}"; do
  bin="$out/fuzz_$t"
  if stale "$bin" "fuzz/fuzz_$t.cpp" "${core_objs[@]}" "${core_hdrs[@]}" fuzz/*.h t/unit/*.h; then
    echo "fuzz.sh: LINK $bin"
    "$cxx" "${link_flags[@]}" "fuzz/fuzz_$t.cpp" "${core_objs[@]}" "${libs[@]}" -o "$bin"
  fi
done
[ "$mode" = build ] && { echo "fuzz.sh: built ${targets[*]} in $out"; exit 0; }

# Largest input per target: above every size limit the code under test enforces.
max_len_of() {
  case "$1" in
    envelope) echo 12288 ;;      # values up to envelope_open's 8192 default bound, and beyond
    session_data|form) echo 8192 ;;
    flask_token|flask_json) echo 8192 ;;   # cookies up to 4096, and beyond
    flask_pickle|flask_msgpack) echo 16384 ;;  # records past one SETITEMS batch
    *) echo 4096 ;;              # redirect_is_safe stops at 2048; cookies at 4096
  esac
}

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$out/fuzz_$t"
  corpus="$out/corpus/$t"
  artifacts="$out/artifacts/$t"
  log="$out/logs/$t.log"
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/corpus/$t" ]; then
    cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "fuzz.sh: running $t for ${fuzz_time}s (corpus $(ls -1 "$corpus" | wc -l) inputs)"
  rc=0
  # libFuzzer enforces -max_total_time itself; the outer timeout only guards against a hang in
  # libFuzzer's own shutdown.
  timeout -k 10 $((fuzz_time + 120)) "$bin" \
    -max_total_time="$fuzz_time" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    status=ok
  else
    status="FAILED (exit $rc)"
    failed+=("$t")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz.sh: === $t FAILED (exit $rc), log $log ==="
    grep -E 'ERROR: |SUMMARY: |runtime error|property failed|^ *#[0-9]+ ' "$log" | head -40 || true
    if [ -n "$artifact" ]; then
      echo "fuzz.sh: reproducer: $artifact"
      echo "fuzz.sh: reproduce:  $bin $artifact"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "fuzz.sh: the run did not finish in time (outer timeout)"
    fi
  fi
  summary+=("$(printf '%-14s %-18s execs %-10s exec/s %-7s %s' "$t" "$status" "${execs:-?}" "${rate:-?}" "$cov")")
done

echo
echo "fuzz.sh: summary (FUZZ_TIME=${fuzz_time}s per target)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets passed"

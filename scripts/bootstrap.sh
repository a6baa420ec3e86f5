#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need. Idempotent: installs only
# what is missing, and says what it installs. Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential dpkg-dev libssl-dev rapidjson-dev libcrypt-dev libpcre2-dev
  zlib1g-dev libmsgpack-dev nginx-dev clang
  # make deb: Debian's packaging tools (dh_nginx itself comes with nginx-dev)
  debhelper
  # the packaged nginx the dynamic module is loaded into
  nginx-core
  # tests, demo, benchmark
  libgtest-dev redis-server wrk apache2-utils curl openssl procps
  python3 python3-pytest python3-requests python3-redis python3-cryptography python3-jwt
  gnuplot-nox
  # the Flask bridge's test vectors: Flask 2.2, Flask-Session 0.3 (pickle records), msgpack
  python3-flask python3-flask-session python3-msgpack
  # the metrics tests parse the exposition with the Prometheus client's own parser
  python3-prometheus-client
)
# Extra groups selected by the caller, e.g. BOOTSTRAP_EXTRA="browser fuzz" (scripts/bench.sh asks
# for "bench").
for extra in ${BOOTSTRAP_EXTRA:-}; do
  case "$extra" in
    browser) PACKAGES+=(chromium chromium-driver python3-selenium) ;;
    fuzz) PACKAGES+=(clang-14 libfuzzer-14-dev libclang-rt-14-dev valgrind) ;;
    # make bench: callgrind's instruction counts, perf's user-mode CPU samples
    bench) PACKAGES+=(valgrind linux-perf) ;;
    *) echo "bootstrap: unknown extra group '$extra'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps packaged services (nginx, redis) from being started by the install: tests start
# their own servers on ports chosen at run time.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ -n "$created_policy" ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bootstrap: done"

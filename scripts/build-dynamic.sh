#!/usr/bin/env bash
# Builds build/modules/ngx_http_session_module.so against Debian's nginx-dev (the headers and
# configure flags of the packaged nginx), the way Debian builds its own dynamic modules, so that
# Debian's /usr/sbin/nginx loads it with `load_module`.
#
#   scripts/build-dynamic.sh BUILD_DIR
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
src=/usr/share/nginx/src
objs="$build/dynamic"

if [ ! -f "$src/conf_flags" ]; then
  echo "build-dynamic: $src/conf_flags not found (apt-get install nginx-dev)" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$src/conf_flags"

CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"

stamp="$objs/.configured"
if [ ! -f "$stamp" ] || [ "$root/config" -nt "$stamp" ] || [ "$root/config.make" -nt "$stamp" ] ||
   [ "$root/src/core/SOURCES" -nt "$stamp" ]; then
  rm -rf "$objs"
  mkdir -p "$objs"
  (cd "$src" && ./configure "${NGX_CONF_FLAGS[@]}" --with-cc-opt="$CFLAGS" --with-ld-opt="$LDFLAGS" \
      --add-dynamic-module="$root" --builddir="$objs" >"$objs/configure.log" 2>&1) || {
    tail -30 "$objs/configure.log" >&2
    exit 1
  }
  touch "$stamp"
fi
(cd "$src" && make -f "$objs/Makefile" -j"$(nproc)" modules)
mkdir -p "$build/modules"
cp "$objs/ngx_http_session_module.so" "$build/modules/ngx_http_session_module.so"
echo "build-dynamic: $build/modules/ngx_http_session_module.so (load into $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'))"

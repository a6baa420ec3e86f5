#!/usr/bin/env bash
# Builds the Debian package of the dynamic module, the way Debian builds its own nginx modules
# (debian/: debhelper, `dh $@ --with nginx`, the nginx_mod build system and dh_nginx from
# nginx-dev), and leaves it under BUILD_DIR/deb/:
#
#   libnginx-mod-http-session_<version>_<arch>.deb         the module and its load_module snippet
#   libnginx-mod-http-session-dbgsym_<version>_<arch>.deb  its debug symbols
#
#   scripts/build-deb.sh BUILD_DIR
#
# The package is built from a copy of the module's files (config, config.make, src/, debian/,
# README.md) under BUILD_DIR/deb/work/, so the tree itself stays clean. The log is
# BUILD_DIR/deb/build.log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
out="$build/deb"

for tool in dpkg-buildpackage dh dh_nginx; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-deb: $tool not found (apt-get install debhelper nginx-dev dpkg-dev)" >&2
    exit 1
  fi
done

package=$(cd "$root" && dpkg-parsechangelog -S Source)
version=$(cd "$root" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
work="$out/work"
src="$work/$package-$version"

rm -rf "$work"
mkdir -p "$src"
(cd "$root" && tar -cf - config config.make src debian README.md) | tar -xf - -C "$src"

log="$out/build.log"
echo "build-deb: building $package $version ($arch) in $src (log: $log)"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc -jauto) >"$log" 2>&1; then
  tail -40 "$log" >&2
  echo "build-deb: dpkg-buildpackage failed (full log: $log)" >&2
  exit 1
fi

rm -f "$out"/*.deb
mv "$work"/*.deb "$out"/
deb="$out/${package}_${version}_${arch}.deb"
if [ ! -f "$deb" ]; then
  echo "build-deb: $deb was not built" >&2
  exit 1
fi
echo "build-deb: $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends
dpkg-deb -c "$deb" | awk '$NF ~ /\.(so|conf)$/ {print "  " $NF}'

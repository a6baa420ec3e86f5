#!/usr/bin/env bash
# Fetches and unpacks the nginx source through `apt-get source`, using deb-src entries derived
# from this machine's own apt sources (no host is named here). A private apt state directory is
# used, so the machine's apt configuration is not changed.
#
#   scripts/fetch-nginx.sh VERSION DESTDIR     e.g. 1.22.1 build/src -> build/src/nginx-1.22.1
#
# VERSION is an upstream nginx version (1.22.1, 1.26.3, ...). Besides the machine's own suites,
# the next Debian release's suite is offered as deb-src too, so newer versions are available.
set -euo pipefail

version=${1:?usage: fetch-nginx.sh VERSION DESTDIR}
dest=${2:?usage: fetch-nginx.sh VERSION DESTDIR}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
if [ -x "$dest/nginx-$version/configure" ]; then
  echo "fetch-nginx: $dest/nginx-$version already unpacked"
  exit 0
fi

aptdir="$dest/apt"
mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
out="$aptdir/sources.list.d/derived.sources"
: >"$out"

next_suite() {
  case "$1" in
    buster) echo bullseye ;; bullseye) echo bookworm ;; bookworm) echo trixie ;;
    trixie) echo forky ;; *) ;;
  esac
}

# Emit one deb822 deb-src stanza.
emit() { # uris suites components signed_by
  {
    echo "Types: deb-src"
    echo "URIs: $1"
    echo "Suites: $2"
    echo "Components: $3"
    if [ -n "$4" ]; then echo "Signed-By: $4"; fi
    echo
  } >>"$out"
}

# deb822 files: every stanza whose Types include "deb".
derive_deb822() {
  local f=$1
  awk -v RS= '{print $0 "\n\x1e"}' "$f" | while IFS= read -r -d $'\x1e' stanza; do
    stanza=$(printf '%s\n' "$stanza" | grep -v '^[[:space:]]*#' || true)
    types=$(printf '%s\n' "$stanza" | sed -n 's/^Types:[[:space:]]*//p')
    case " $types " in *" deb "*) ;; *) continue ;; esac
    enabled=$(printf '%s\n' "$stanza" | sed -n 's/^Enabled:[[:space:]]*//p')
    if [ "$enabled" = no ]; then continue; fi
    uris=$(printf '%s\n' "$stanza" | sed -n 's/^URIs:[[:space:]]*//p')
    suites=$(printf '%s\n' "$stanza" | sed -n 's/^Suites:[[:space:]]*//p')
    comps=$(printf '%s\n' "$stanza" | sed -n 's/^Components:[[:space:]]*//p')
    signed=$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By:[[:space:]]*//p')
    [ -n "$uris" ] && [ -n "$suites" ] || continue
    emit "$uris" "$suites" "$comps" "$signed"
    extra=
    for s in $suites; do
      case "$s" in *-*) continue ;; esac   # only plain release suites, not -updates/-security
      n=$(next_suite "$s"); if [ -n "$n" ]; then extra="$extra $n"; fi
    done
    if [ -n "$extra" ]; then emit "$uris" "${extra# }" "$comps" "$signed"; fi
  done
}

# One-line format: "deb [opts] uri suite comp..."
derive_oneline() {
  local f=$1
  grep -E '^[[:space:]]*deb[[:space:]]' "$f" | while read -r _ rest; do
    opts=
    if [[ $rest == \[* ]]; then opts=${rest%%]*}; opts=${opts#[}; rest=${rest#*] }; fi
    read -r uri suite comps <<<"$rest"
    signed=$(sed -n 's/.*signed-by=\([^ ]*\).*/\1/p' <<<"$opts")
    emit "$uri" "$suite" "$comps" "$signed"
    case "$suite" in *-*|*/*) ;; *) n=$(next_suite "$suite"); if [ -n "$n" ]; then emit "$uri" "$n" "$comps" "$signed"; fi ;; esac
  done
}

for f in /etc/apt/sources.list.d/*.sources; do if [ -f "$f" ]; then derive_deb822 "$f"; fi; done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do if [ -f "$f" ]; then derive_oneline "$f"; fi; done
if [ ! -s "$out" ]; then
  echo "fetch-nginx: no 'deb' entries found in /etc/apt to derive deb-src entries from" >&2
  exit 1
fi
echo "fetch-nginx: deb-src entries derived from the machine's apt sources:"
grep -E '^(URIs|Suites):' "$out" | paste - - | sed 's/^/  /'

OPTS=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$aptdir/sources.list.d"
      -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$aptdir/cache" -o APT::Sandbox::User=root)
APT=(apt-get -q "${OPTS[@]}")
"${APT[@]}" update >"$aptdir/update.log" 2>&1 || { cat "$aptdir/update.log" >&2; echo "fetch-nginx: apt-get update failed" >&2; exit 1; }

# Pick the Debian source version whose upstream part is $version (newest Debian revision).
debver=$(apt-cache "${OPTS[@]}" showsrc nginx 2>/dev/null | sed -n 's/^Version: //p' |
         grep -E "^([0-9]+:)?${version//./\\.}-" | sort -V -r | head -1 || true)
if [ -z "$debver" ]; then
  echo "fetch-nginx: nginx $version is not available as a Debian source package here; available:" >&2
  apt-cache "${OPTS[@]}" showsrc nginx 2>/dev/null | sed -n 's/^Version: /  /p' | sort -uV >&2
  exit 1
fi
echo "fetch-nginx: apt-get source nginx=$debver"
cd "$dest"
# The orig tarball may arrive even if a pocket's .dsc cannot be fetched; check for it afterwards.
"${APT[@]}" source --download-only "nginx=$debver" >"$aptdir/source.log" 2>&1 || true
orig=$(ls nginx_"$version".orig.tar.* 2>/dev/null | head -1 || true)
if [ -z "$orig" ]; then
  cat "$aptdir/source.log" >&2
  echo "fetch-nginx: nginx_$version.orig.tar.* was not downloaded" >&2
  exit 1
fi
rm -rf "nginx-$version"
tar -xf "$orig"
[ -x "nginx-$version/configure" ] || { echo "fetch-nginx: $orig did not unpack to nginx-$version" >&2; exit 1; }
echo "fetch-nginx: unpacked $dest/nginx-$version (upstream source; Debian's patches are not applied)"

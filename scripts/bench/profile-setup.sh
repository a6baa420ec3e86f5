# Sourced by scripts/bench/profile.sh and perf-profile.sh: a fresh $prefix with a random secret
# and scripts/bench/profile.conf.in rendered into $prefix/nginx.conf, its four servers on free
# loopback ports picked now ($port: encrypted store, $port_base: baseline, $port_req:
# session_require, $port_signed: signed store), checked with `nginx -t`.
# Needs: $root, $prefix, and $1 the nginx binary to check the configuration with.

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

profile_setup() {  # profile_setup NGINX_BIN
  rm -rf "$prefix"
  mkdir -p "$prefix/tmp" "$prefix/logs"
  (umask 077; head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$prefix/secret"
   echo >>"$prefix/secret")
  port=$(free_port)
  port_base=$(free_port)
  port_req=$(free_port)
  port_signed=$(free_port)
  local user=""
  [ "$(id -u)" = 0 ] && user="user root;"
  sed -e "s#@PREFIX@#$prefix#g" -e "s#@PORT@#$port#g" -e "s#@PORT_BASELINE@#$port_base#g" \
      -e "s#@PORT_REQUIRE@#$port_req#g" -e "s#@PORT_SIGNED@#$port_signed#g" \
      -e "s#@SECRET@#$prefix/secret#g" -e "s#@USER@#$user\n#" \
      "$root/scripts/bench/profile.conf.in" >"$prefix/nginx.conf"
  "$1" -p "$prefix/" -c "$prefix/nginx.conf" -t -q
}

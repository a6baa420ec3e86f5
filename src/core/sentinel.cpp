// Redis Sentinel and roles (see sentinel.h).
#include "sentinel.h"

#include <utility>

namespace sess {

namespace {

bool is_bulk(const RespValue& v) noexcept { return v.type == RespType::Bulk; }
bool is_bulk(const RespValue& v, std::string_view text) noexcept {
  return v.type == RespType::Bulk && v.str == text;
}
bool is_int(const RespValue& v) noexcept { return v.type == RespType::Integer; }
bool is_array(const RespValue& v) noexcept { return v.type == RespType::Array; }

// host and port text into *out (unchanged on false).
bool make_addr(std::string_view host, std::string_view port, NodeAddr* out) {
  uint16_t p = 0;
  if (!host_valid(host) || !parse_port(port, &p)) return false;
  out->host.assign(host.data(), host.size());
  out->port = p;
  return true;
}

}  // namespace

bool parse_master_addr(const RespValue& reply, NodeAddr* out) {
  if (!is_array(reply) || reply.elements.size() != 2) return false;
  const RespValue& host = reply.elements[0];
  const RespValue& port = reply.elements[1];
  if (!is_bulk(host) || !is_bulk(port)) return false;
  return make_addr(host.str, port.str, out);
}

Role parse_role(const RespValue& reply) noexcept {
  if (!is_array(reply) || reply.elements.empty()) return Role::Unknown;
  const auto& e = reply.elements;
  if (is_bulk(e[0], "master")) {
    return e.size() >= 3 && is_int(e[1]) && is_array(e[2]) ? Role::Master : Role::Unknown;
  }
  if (is_bulk(e[0], "slave") || is_bulk(e[0], "replica")) {
    return e.size() >= 5 && is_bulk(e[1]) && is_int(e[2]) && is_bulk(e[3]) && is_int(e[4])
               ? Role::Replica
               : Role::Unknown;
  }
  if (is_bulk(e[0], "sentinel")) {
    return e.size() >= 2 && is_array(e[1]) ? Role::Sentinel : Role::Unknown;
  }
  return Role::Unknown;
}

bool parse_pubsub_message(const RespValue& reply, std::string_view* channel,
                          std::string_view* payload) noexcept {
  if (!is_array(reply)) return false;
  const auto& e = reply.elements;
  size_t at = 0;  // index of the channel
  if (e.size() == 3 && is_bulk(e[0], "message")) {
    at = 1;
  } else if (e.size() == 4 && is_bulk(e[0], "pmessage") && is_bulk(e[1])) {
    at = 2;
  } else {
    return false;
  }
  if (!is_bulk(e[at]) || !is_bulk(e[at + 1])) return false;
  *channel = e[at].str;
  *payload = e[at + 1].str;
  return true;
}

bool parse_switch_master(std::string_view payload, SwitchMaster* out) {
  std::string_view f[5];
  for (size_t i = 0; i < 5; i++) {
    const size_t space = payload.find(' ');
    if ((space == std::string_view::npos) != (i == 4)) return false;
    f[i] = payload.substr(0, space);
    if (f[i].empty()) return false;
    if (i < 4) payload.remove_prefix(space + 1);
  }
  if (has_ctl(f[0])) return false;
  SwitchMaster r;
  if (!make_addr(f[1], f[2], &r.from) || !make_addr(f[3], f[4], &r.to)) return false;
  r.name.assign(f[0].data(), f[0].size());
  *out = std::move(r);
  return true;
}

}  // namespace sess

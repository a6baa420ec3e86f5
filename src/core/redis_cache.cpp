// The Redis session cache's decisions (see redis_cache.h).
#include "redis_cache.h"

namespace sess {

std::string_view cache_status_name(CacheStatus s) noexcept {
  switch (s) {
    case CacheStatus::Hit: return "hit";
    case CacheStatus::Miss: return "miss";
    case CacheStatus::Bypass: return "bypass";
    case CacheStatus::Empty: break;
  }
  return "";
}

namespace {

bool is_bulk(const RespValue& v, std::string_view text) noexcept {
  return v.type == RespType::Bulk && v.str == text;
}

}  // namespace

Invalidation parse_invalidation(const RespValue& reply) {
  Invalidation out;
  if (reply.type != RespType::Array || reply.elements.empty()) {
    out.kind = Invalidation::Kind::Malformed;
    return out;
  }
  const auto& e = reply.elements;
  if (e.size() == 3 && is_bulk(e[0], "message") && e[1].type == RespType::Bulk) {
    if (e[1].str != kInvalidateChannel) return out;  // Other
    const RespValue& keys = e[2];
    if (keys.type == RespType::Nil || keys.type == RespType::NilArray) {
      out.kind = Invalidation::Kind::All;
      return out;
    }
    if (keys.type != RespType::Array || keys.elements.empty()) {
      out.kind = Invalidation::Kind::Malformed;
      return out;
    }
    out.keys.reserve(keys.elements.size());
    for (const RespValue& k : keys.elements) {
      if (k.type != RespType::Bulk) {
        out.keys.clear();
        out.kind = Invalidation::Kind::Malformed;
        return out;
      }
      out.keys.emplace_back(k.str);
    }
    out.kind = Invalidation::Kind::Keys;
    return out;
  }
  if (e.size() == 3 && is_bulk(e[0], "subscribe") && e[1].type == RespType::Bulk &&
      e[2].type == RespType::Integer) {
    if (e[1].str == kInvalidateChannel) out.kind = Invalidation::Kind::Subscribed;
    return out;
  }
  if (e.size() == 2 && is_bulk(e[0], "pong") && e[1].type == RespType::Bulk) {
    out.kind = Invalidation::Kind::Pong;
    return out;
  }
  return out;  // Other
}

std::optional<uint64_t> cache_expiry(uint64_t now_ms, uint64_t max_age_ms,
                                     int64_t pttl_ms) noexcept {
  if (max_age_ms == 0) return std::nullopt;
  uint64_t life = max_age_ms;
  if (pttl_ms == -1) {
    // no TTL: max_age alone
  } else if (pttl_ms <= 0) {
    return std::nullopt;
  } else if (static_cast<uint64_t>(pttl_ms) < life) {
    life = static_cast<uint64_t>(pttl_ms);
  }
  if (now_ms > UINT64_MAX - life) return std::nullopt;
  return now_ms + life;
}

CacheCoherence::CacheCoherence(SharedEpoch& epoch) : epoch_(epoch) { flush(); }

bool CacheCoherence::active() const noexcept {
  if (shut_down_ || subscriber_id_ <= 0) return false;
  for (const auto& [conn, d] : data_) {
    if (!d.up || d.tracking_for != subscriber_id_) return false;
  }
  return true;
}

void CacheCoherence::flush() {
  epoch_.bump();
  flushes_++;
}

void CacheCoherence::subscriber_up(int64_t client_id) {
  if (subscriber_id_ != 0) flush();  // up again without a loss reported: a reconnect all the same
  subscriber_id_ = client_id > 0 ? client_id : 0;
}

void CacheCoherence::subscriber_lost() {
  subscriber_id_ = 0;
  flush();
}

void CacheCoherence::data_up(uint32_t conn) {
  Data& d = data_[conn];
  if (d.up) flush();  // up again without a loss reported
  d.up = true;
  d.tracking_for = 0;
}

void CacheCoherence::data_tracking(uint32_t conn, int64_t redirect_id, bool ok) {
  auto it = data_.find(conn);
  if (it == data_.end() || !it->second.up) return;
  if (!ok) {
    it->second.tracking_for = 0;
    return;
  }
  if (redirect_id > 0 && redirect_id == subscriber_id_) it->second.tracking_for = redirect_id;
}

void CacheCoherence::data_lost(uint32_t conn) {
  Data& d = data_[conn];
  d.up = false;
  d.tracking_for = 0;
  flush();
}

void CacheCoherence::data_removed(uint32_t conn) {
  if (data_.erase(conn) != 0) flush();
}

void CacheCoherence::topology_changed() { flush(); }

bool CacheCoherence::on_invalidation(const Invalidation& inv) {
  switch (inv.kind) {
    case Invalidation::Kind::Keys:
      for (std::string_view k : inv.keys) own_write(k);
      return true;
    case Invalidation::Kind::All:
    case Invalidation::Kind::Malformed:
      flush();
      return false;
    case Invalidation::Kind::Subscribed:
    case Invalidation::Kind::Pong:
    case Invalidation::Kind::Other:
      break;
  }
  return false;
}

void CacheCoherence::own_write(std::string_view key) {
  auto it = pending_.find(std::string(key));
  if (it != pending_.end()) it->second.cancelled = ++seq_;
}

std::optional<CacheCoherence::FillTicket> CacheCoherence::begin_fill(std::string_view key) {
  if (!active()) return std::nullopt;
  FillTicket t;
  t.key.assign(key.data(), key.size());
  t.seq = ++seq_;
  t.epoch = epoch_.load();
  pending_[t.key].fills++;
  return t;
}

void CacheCoherence::end(const FillTicket& t) {
  auto it = pending_.find(t.key);
  if (it == pending_.end()) return;
  if (it->second.fills <= 1) {
    pending_.erase(it);
  } else {
    it->second.fills--;
  }
}

bool CacheCoherence::end_fill(const FillTicket& t) {
  auto it = pending_.find(t.key);
  const bool cancelled = it == pending_.end() || it->second.cancelled >= t.seq;
  const bool ok = !cancelled && active() && epoch_.load() == t.epoch;
  end(t);
  return ok;
}

void CacheCoherence::abandon_fill(const FillTicket& t) { end(t); }

CacheStatus CacheCoherence::lookup(const CacheEntryMeta* e, uint64_t now_ms) const noexcept {
  if (!active()) return CacheStatus::Bypass;
  if (e == nullptr || e->epoch != epoch_.load() || now_ms >= e->expires_ms) {
    return CacheStatus::Miss;
  }
  return CacheStatus::Hit;
}

void CacheCoherence::shutdown() {
  shut_down_ = true;
  flush();
}

}  // namespace sess

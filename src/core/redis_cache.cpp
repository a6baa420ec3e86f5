// The Redis session cache's decisions (see redis_cache.h).
#include "redis_cache.h"

#include <cstring>

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
  if (is_bulk(e[0], "message") && (e.size() != 3 || e[1].type != RespType::Bulk)) {
    // A message of an unknown shape: the only subscription is ours, so it may be an
    // invalidation this parser cannot read. Fail closed (the glue closes the link: a flush).
    out.kind = Invalidation::Kind::Malformed;
    return out;
  }
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

uint64_t kept_cookie_binding(const uint64_t seed[2], uint64_t ring,
                             std::string_view name) noexcept {
  // The ring mixed with the first seed word, then the name's length and its bytes eight at a
  // time (words; the last one, or the two halves of a name under eight bytes, overlapping: with
  // the length in, every name gives its own sequence), the second seed word, then a final
  // multiply and shift so that every input bit reaches every output bit. Each word is mixed on
  // its own before it joins (as MurmurHash64A's steps): a byte changed in one word and another
  // in the next do not cancel out, as they can when words are xored into the state raw.
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
  auto step = [](uint64_t h, uint64_t w) noexcept {
    w *= 0xc6a4a7935bd1e995ull;
    w ^= w >> 47;
    w *= 0xc6a4a7935bd1e995ull;
    h = (h ^ w) * kMul;
    return h ^ (h >> 32);
  };
  const char* p = name.data();
  const size_t n = name.size();
  uint64_t h = step((ring ^ seed[0]) * kMul, n);
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) h = step(h, load_u64(p + i));
    h = step(h, load_u64(p + n - 8));
  } else if (n >= 4) {
    h = step(h, static_cast<uint64_t>(load_u32(p)) << 32 | load_u32(p + n - 4));
  } else {
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w = w << 8 | static_cast<unsigned char>(p[i]);
    h = step(h, w);
  }
  h ^= seed[1];
  h *= 0xc2b2ae3d27d4eb4full;
  return h ^ (h >> 31);
}

bool kept_cookie_bind(const uint64_t seed[2], uint64_t ring, std::string_view name,
                      uint64_t* out) noexcept {
  if (ring == 0) return false;
  *out = kept_cookie_binding(seed, ring, name);
  return true;
}

KeptCookie kept_cookie_with(uint64_t binding, const unsigned char* proof) noexcept {
  KeptCookie k;
  k.binding = binding;
  std::memcpy(k.proof, proof, kIdProofLen);
  return k;
}

bool kept_cookie_make(const uint64_t seed[2], uint64_t ring, std::string_view name,
                      const unsigned char* proof, KeptCookie* out) noexcept {
  uint64_t binding;
  if (!kept_cookie_bind(seed, ring, name, &binding)) return false;
  *out = kept_cookie_with(binding, proof);
  return true;
}

bool kept_cookie_holds(const KeptCookie* kept, uint64_t binding,
                       const unsigned char* proof) noexcept {
  if (kept == nullptr || kept->binding != binding) return false;
  return ct_equal(std::string_view(reinterpret_cast<const char*>(kept->proof), kIdProofLen),
                  std::string_view(reinterpret_cast<const char*>(proof), kIdProofLen));
}

bool kept_cookie_matches(const KeptCookie* kept, const KeptCookie* presented) noexcept {
  return presented != nullptr && kept_cookie_holds(kept, presented->binding, presented->proof);
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

// ---------------------------------------------------------------------------------------------
// Entries' records

bool cache_record_encode(const SessionData& data, std::string& out) {
  out.clear();
  const auto& values = data.values();
  if (values.size() > 0xffff) return false;
  size_t total = 2;
  for (const auto& v : values) {
    if (v.key.empty() || v.key.size() > 0xff || v.text.size() > 0xffffffffu) return false;
    total += 6 + v.key.size() + v.text.size();
  }
  out.reserve(total);
  auto put = [&](uint64_t n, int bytes) {
    for (int i = 0; i < bytes; i++) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  };
  put(values.size(), 2);
  for (const auto& v : values) {
    put(v.is_string ? 1 : 0, 1);
    put(v.key.size(), 1);
    put(v.text.size(), 4);
    out.append(v.key.data(), v.key.size());
    out.append(v.text.data(), v.text.size());
  }
  return true;
}

bool cache_record_decode(std::string_view bytes, SessionData* out) {
  out->clear();
  size_t pos = 0;
  auto get = [&](int n, uint64_t* v) {
    if (bytes.size() - pos < static_cast<size_t>(n)) return false;
    *v = 0;
    for (int i = 0; i < n; i++) {
      *v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
    }
    pos += static_cast<size_t>(n);
    return true;
  };
  uint64_t count = 0;
  if (!get(2, &count)) return false;
  if (count > (bytes.size() - pos) / 7) return false;  // each value takes 7 bytes at least
  out->reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; i++) {
    uint64_t is_string = 0, key_len = 0, text_len = 0;
    if (!get(1, &is_string) || !get(1, &key_len) || !get(4, &text_len) || is_string > 1 ||
        key_len == 0 || bytes.size() - pos < key_len + text_len) {
      out->clear();
      return false;
    }
    std::string_view key = bytes.substr(pos, key_len);
    std::string_view text = bytes.substr(pos + key_len, text_len);
    pos += key_len + text_len;
    // (The bytes are cache_record_encode's, of a SessionData: its keys are distinct.)
    out->append(key, text, is_string != 0);
  }
  if (pos != bytes.size()) {
    out->clear();
    return false;
  }
  return true;
}

}  // namespace sess

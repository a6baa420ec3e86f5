// libFuzzer target: the Redis session cache's core (src/core/redis_cache.h).
//
// Input: MODE REST. MODE & 1 chooses:
//   0 - pushes: REST is a RESP2 stream as read on the invalidation subscriber; every complete
//       reply (RespParser, default limits) goes through parse_invalidation.
//       classify  - the kind and keys agree with a reference classifier written here from the
//                   header's contract: ["message", "__redis__:invalidate", [bulk, ...]] (at
//                   least one) -> Keys with exactly those keys in order (views into the reply);
//                   the same with a nil bulk or nil array -> All; with anything else as keys ->
//                   Malformed; ["subscribe", "__redis__:invalidate", :n] -> Subscribed;
//                   ["pong", bulk] -> Pong; a non-array or an empty array -> Malformed;
//                   any other array (another channel, another push, other shapes) -> Other.
//                   Keys is the only kind with keys.
//       apply     - an active CacheCoherence with fills pending for the message's keys and an
//                   unrelated key gets the classification: Keys cancels exactly those keys'
//                   fills (returns true, no flush); All and Malformed flush (every fill
//                   cancelled, returns false); the others change nothing. It stays active.
//   1 - model: REST is the choices of cache_model.h's simulation (t/unit/cache_model.h, shared
//       with the unit test: one byte per choice), one event after another until the input ends;
//       MODE & 2: pushes are delivered as RESP2 bytes through the parser. Properties: no stale
//       Hit outside the accepted window (invalidation in flight, or the subscriber dead and not
//       yet detected), active() is what the worker was told, pending_keys() matches the fills in
//       flight, and a push reads back as the key it invalidates (or All).
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "redis_cache.h"
#include "resp.h"

#include "../t/unit/cache_model.h"
#include "fuzz_check.h"

namespace {

using sess::CacheCoherence;
using sess::Invalidation;
using sess::RespParser;
using sess::RespType;
using sess::RespValue;
using Kind = sess::Invalidation::Kind;

// --- reference classifier ---------------------------------------------------------------------

bool bulk_is(const RespValue& v, const char* text) {
  return v.type == RespType::Bulk && v.str.size() == std::strlen(text) &&
         std::memcmp(v.str.data(), text, v.str.size()) == 0;
}

struct Expected {
  Kind kind;
  std::vector<const std::string*> keys;  // the reply's own strings
};

Expected reference(const RespValue& r) {
  if (r.type != RespType::Array || r.elements.empty()) return {Kind::Malformed, {}};
  const std::vector<RespValue>& e = r.elements;
  const char* channel = "__redis__:invalidate";
  if (bulk_is(e[0], "message") && (e.size() != 3 || e[1].type != RespType::Bulk)) {
    return {Kind::Malformed, {}};
  }
  if (e.size() == 3 && bulk_is(e[0], "message") && bulk_is(e[1], channel)) {
    const RespValue& k = e[2];
    if (k.type == RespType::Nil || k.type == RespType::NilArray) return {Kind::All, {}};
    if (k.type != RespType::Array || k.elements.empty()) return {Kind::Malformed, {}};
    Expected out{Kind::Keys, {}};
    for (const RespValue& key : k.elements) {
      if (key.type != RespType::Bulk) return {Kind::Malformed, {}};
      out.keys.push_back(&key.str);
    }
    return out;
  }
  if (e.size() == 3 && bulk_is(e[0], "subscribe") && bulk_is(e[1], channel) &&
      e[2].type == RespType::Integer) {
    return {Kind::Subscribed, {}};
  }
  if (e.size() == 2 && bulk_is(e[0], "pong") && e[1].type == RespType::Bulk) {
    return {Kind::Pong, {}};
  }
  return {Kind::Other, {}};
}

// --- apply: the classification into an active worker ------------------------------------------

void apply(const Invalidation& inv) {
  cache_model::Epoch epoch;
  CacheCoherence c(epoch);
  c.subscriber_up(5);
  c.data_up(0);
  c.data_tracking(0, 5, true);
  FUZZ_CHECK(c.active());
  // One fill per distinct key of the message, and one of a key it does not name.
  std::set<std::string> keys(inv.keys.begin(), inv.keys.end());
  std::string unrelated = "u";
  while (keys.count(unrelated) != 0) unrelated += 'u';
  std::vector<CacheCoherence::FillTicket> tickets;
  for (const std::string& k : keys) {
    auto t = c.begin_fill(k);
    FUZZ_CHECK(t.has_value());
    tickets.push_back(*t);
  }
  auto other = c.begin_fill(unrelated);
  FUZZ_CHECK(other.has_value());
  FUZZ_CHECK(c.pending_keys() == keys.size() + 1);

  const uint64_t flushes = c.flushes();
  const uint64_t before = epoch.n;
  const bool erase = c.on_invalidation(inv);
  const bool flushed = inv.kind == Kind::All || inv.kind == Kind::Malformed;
  FUZZ_CHECK(erase == (inv.kind == Kind::Keys));
  FUZZ_CHECK(c.flushes() == flushes + (flushed ? 1 : 0));
  FUZZ_CHECK(epoch.n == before + (flushed ? 1 : 0));
  FUZZ_CHECK(c.active());
  for (const auto& t : tickets) {
    // Keys: each named key was cancelled; otherwise only a flush cancels.
    FUZZ_CHECK(!c.end_fill(t));
  }
  FUZZ_CHECK(c.end_fill(*other) == !flushed);
  FUZZ_CHECK(c.pending_keys() == 0);
}

void pushes(std::string_view stream) {
  RespParser parser;
  const sess::RespLimits limits;
  while (!stream.empty()) {
    RespValue reply;
    size_t used = 0;
    const RespParser::Result res = parser.feed(stream, limits, &used, &reply);
    FUZZ_CHECK(used <= stream.size());
    stream.remove_prefix(used);
    if (res == RespParser::Result::NeedMore || res == RespParser::Result::ProtocolError) return;
    if (res == RespParser::Result::TooLarge) continue;

    const Invalidation inv = sess::parse_invalidation(reply);
    const Expected want = reference(reply);
    FUZZ_CHECK(inv.kind == want.kind);
    FUZZ_CHECK(inv.keys.size() == want.keys.size());
    for (size_t i = 0; i < inv.keys.size(); i++) {
      // The very bytes of the reply's element (a view into it), in order.
      FUZZ_CHECK(inv.keys[i].data() == want.keys[i]->data());
      FUZZ_CHECK(inv.keys[i].size() == want.keys[i]->size());
    }
    apply(inv);
  }
}

// --- model ------------------------------------------------------------------------------------

class Bytes final : public cache_model::Choices {
 public:
  explicit Bytes(std::string_view in) : in_(in) {}
  uint64_t pick(uint64_t n) override {
    if (pos_ == in_.size()) return 0;
    return static_cast<uint8_t>(in_[pos_++]) % n;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

void model(std::string_view choices, bool via_resp) {
  Bytes bytes(choices);
  cache_model::Model m(bytes);
  m.via_resp = via_resp;
  while (!bytes.done()) {
    if (!m.step()) {
      std::fprintf(stderr, "cache model: %s\n", m.failure.c_str());
      FUZZ_CHECK(false);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((mode & 1) == 0) {
    pushes(rest);
  } else {
    model(rest, (mode & 2) != 0);
  }
  return 0;
}

// A model of Redis client-side caching around one worker's CacheCoherence (redis_cache.h): a
// Redis with a tracking table and redirect, invalidations racing GET replies on another socket,
// quiet subscriber death (pushes lost), PING detection (or a reconnect seen first), CLIENT
// TRACKING answered in order with the GET replies (-ERR when the redirect target is already dead),
// data reconnects, FLUSHALL, own writes, and the zone's entries. Shared by the unit test (t/unit/test_redis_cache.cpp: random seeds) and
// the fuzz target (fuzz/fuzz_cache.cpp: the choices are the fuzz input's bytes).
//
// step() performs one event chosen by the Choices; it returns false (failure says why) when a
// property breaks:
//   stale     - a Hit whose entry is stale, unless its invalidation is still in flight or the
//               subscriber died quietly and the PING has not detected it yet (the accepted
//               window, README "The session cache");
//   active    - CacheCoherence::active() is what the worker was told: its subscriber is up (as
//               far as it knows) and its data connection, if it ever had one, is up and its last
//               CLIENT TRACKING answer was +OK for that subscriber's id;
//   pending   - pending_keys() is the number of distinct keys of the fills in flight;
//   push      - (with via_resp) the push Redis would send, as RESP2 bytes through RespParser and
//               parse_invalidation, gives back exactly the key (Keys) or All.
// No gtest here: the callers report the failure.
#pragma once

#include "redis_cache.h"
#include "resp.h"

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace cache_model {

class Epoch final : public sess::SharedEpoch {
 public:
  uint64_t load() const noexcept override { return n; }
  void bump() noexcept override { n++; }
  uint64_t n = 100;
};

// Where the model's decisions come from: pick(n) is in [0, n).
class Choices {
 public:
  virtual ~Choices() = default;
  virtual uint64_t pick(uint64_t n) = 0;
};

struct Model {
  using Kind = sess::Invalidation::Kind;

  Choices& choose;
  bool via_resp = false;  // deliver pushes as RESP2 bytes (push property)
  Epoch epoch;
  sess::CacheCoherence c{epoch};
  uint64_t now = 0;
  const uint64_t max_age = 50;
  std::string failure;

  // Redis
  std::map<std::string, uint64_t> version;
  std::set<std::string> tracked;       // the data connection's tracking table
  int64_t redirect = 0;                // tracking on, redirecting to this client id; 0: off
  int64_t next_id = 10;

  // the subscriber
  int64_t sub_id = 0;                  // alive with this id; 0: dead
  bool sub_known_lost = true;          // the worker knows it is down
  int64_t worker_sub = 0;              // the id the worker was last given (subscriber_up)
  std::deque<std::optional<std::string>> pushes;  // in flight: a key, or nullopt (all)

  // the data connection
  bool data_up = false;
  bool data_ever_up = false;
  int64_t tracking_sent = 0;           // the id of the last CLIENT TRACKING sent on it
  int64_t tracking_answer = 0;         // the id of the last one answered +OK (0: -ERR or none)
  struct Get {                         // a reply in the data connection's FIFO
    std::string key;
    uint64_t version;
    std::optional<sess::CacheCoherence::FillTicket> ticket;
    uint64_t pttl;
    int64_t tracking = 0;              // not a GET: CLIENT TRACKING on REDIRECT <tracking>
    bool ok = false;                   // its answer
  };
  std::deque<Get> fifo;

  // the zone
  struct Entry {
    uint64_t version;
    sess::CacheEntryMeta meta;
  };
  std::map<std::string, Entry> zone;
  uint64_t hits = 0;
  uint64_t stale_hits = 0;  // within the accepted window

  explicit Model(Choices& ch) : choose(ch) {}

  std::string key() { return "k" + std::to_string(choose.pick(4)); }

  void invalidate_in_redis(const std::string& k) {
    if (tracked.erase(k) == 0 || redirect == 0) return;
    if (sub_id != 0 && sub_id == redirect) pushes.emplace_back(k);  // else: lost
  }

  bool fail(std::string why) {
    failure = std::move(why);
    return false;
  }

  // The push as Redis 7 writes it on a RESP2 subscriber, through the parser and the classifier.
  bool deliver_via_resp(const std::optional<std::string>& p) {
    std::string wire = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n";
    if (p) {
      wire += "*1\r\n$" + std::to_string(p->size()) + "\r\n" + *p + "\r\n";
    } else {
      wire += "$-1\r\n";
    }
    sess::RespParser parser;
    sess::RespValue reply;
    size_t used = 0;
    if (parser.feed(wire, sess::RespLimits{}, &used, &reply) != sess::RespParser::Result::Reply ||
        used != wire.size()) {
      return fail("push: the parser did not read the push whole");
    }
    const sess::Invalidation inv = sess::parse_invalidation(reply);
    if (p) {
      if (inv.kind != Kind::Keys || inv.keys.size() != 1 || inv.keys[0] != *p) {
        return fail("push: invalidation of " + *p + " not classified as Keys [" + *p + "]");
      }
      if (c.on_invalidation(inv)) zone.erase(*p);
    } else {
      if (inv.kind != Kind::All || !inv.keys.empty()) {
        return fail("push: nil message not classified as All");
      }
      c.on_invalidation(inv);
    }
    return true;
  }

  bool check_invariants() {
    const bool expect_active =
        !sub_known_lost &&
        (!data_ever_up || (data_up && tracking_answer != 0 && tracking_answer == worker_sub));
    if (c.active() != expect_active) {
      return fail(std::string("active: CacheCoherence says ") + (c.active() ? "active" : "bypass") +
                  ", the worker was told otherwise");
    }
    std::set<std::string> in_flight;
    for (const Get& g : fifo) {
      if (g.tracking == 0 && g.ticket) in_flight.insert(g.key);
    }
    if (c.pending_keys() != in_flight.size()) {
      return fail("pending: " + std::to_string(c.pending_keys()) + " pending keys, " +
                  std::to_string(in_flight.size()) + " keys with fills in flight");
    }
    return true;
  }

  bool step() {
    if (!event()) return false;
    return check_invariants();
  }

  bool event() {
    switch (choose.pick(14)) {
      case 0:  // another client writes (or deletes) a key
      case 1: {
        std::string k = key();
        version[k]++;
        invalidate_in_redis(k);
        break;
      }
      case 2: {  // this nginx writes: never a fill
        if (!data_up) break;
        std::string k = key();
        c.own_write(k);
        zone.erase(k);
        version[k]++;
        invalidate_in_redis(k);
        break;
      }
      case 3:  // FLUSHALL
        if (choose.pick(4) != 0) break;
        for (auto& [k, v] : version) v++;
        if (redirect != 0 && !tracked.empty()) {
          if (sub_id != 0 && sub_id == redirect) pushes.emplace_back(std::nullopt);
        }
        tracked.clear();
        break;
      case 4:  // deliver an invalidation
      case 5: {
        if (pushes.empty()) break;
        std::optional<std::string> p = pushes.front();
        pushes.pop_front();
        if (via_resp) return deliver_via_resp(p);
        sess::Invalidation inv;
        if (p) {
          inv.kind = Kind::Keys;
          inv.keys = {*p};
          if (c.on_invalidation(inv)) zone.erase(*p);
        } else {
          inv.kind = Kind::All;
          c.on_invalidation(inv);
        }
        break;
      }
      case 6: {  // a lookup misses: GET sent (the fill is marked pending first)
        if (!data_up) break;
        std::string k = key();
        Get g{k, version[k], c.begin_fill(k), 1 + choose.pick(100), 0, false};
        if (redirect != 0) tracked.insert(k);
        fifo.push_back(std::move(g));
        break;
      }
      case 7:  // a GET reply arrives
      case 8: {
        if (fifo.empty()) break;
        Get g = std::move(fifo.front());
        fifo.pop_front();
        if (g.tracking != 0) {
          tracking_answer = g.ok ? g.tracking : 0;
          c.data_tracking(0, g.tracking, g.ok);
        } else if (g.ticket && c.end_fill(*g.ticket)) {
          auto exp = sess::cache_expiry(now, max_age, static_cast<int64_t>(g.pttl));
          if (exp) zone[g.key] = {g.version, {g.ticket->epoch, *exp}};
        }
        break;
      }
      case 9:  // the subscriber dies quietly (its pushes are lost)
        if (choose.pick(3) != 0 || sub_id == 0) break;
        sub_id = 0;
        pushes.clear();
        break;
      case 10:  // the PING times out / the close is seen; then it reconnects
        if (sub_id == 0 && !sub_known_lost && choose.pick(4) != 0) {
          c.subscriber_lost();
          sub_known_lost = true;
        } else if (sub_id == 0) {  // (or the new subscription is reported first, loss unreported)
          sub_id = next_id++;
          sub_known_lost = false;
          worker_sub = sub_id;
          c.subscriber_up(sub_id);
        }
        break;
      case 11:  // the data connection: lost, or reconnected (CLIENT TRACKING first)
        if (data_up && choose.pick(3) == 0) {
          data_up = false;
          for (Get& g : fifo) {
            if (g.ticket) c.abandon_fill(*g.ticket);
          }
          fifo.clear();
          tracked.clear();
          redirect = 0;
          c.data_lost(0);
        } else if (!data_up) {
          data_up = true;
          data_ever_up = true;
          tracking_sent = tracking_answer = 0;
          c.data_up(0);
        } else if (!sub_known_lost && tracking_sent != worker_sub) {
          // CLIENT TRACKING on REDIRECT <the id the worker knows>, answered after the GETs
          // before it: +OK, or -ERR if that client is gone (the tracking stays as it was).
          tracking_sent = worker_sub;
          const bool ok = sub_id != 0 && sub_id == worker_sub;
          if (ok) redirect = worker_sub;
          fifo.push_back(Get{"", 0, std::nullopt, 0, worker_sub, ok});
        }
        break;
      case 12:
        now += choose.pick(10);
        break;
      case 13: {  // a lookup
        std::string k = key();
        auto it = zone.find(k);
        sess::CacheStatus s = c.lookup(it == zone.end() ? nullptr : &it->second.meta, now);
        if (s != sess::CacheStatus::Hit) break;
        hits++;
        if (it->second.version == version[k]) break;
        // Stale: allowed only while its invalidation is on the way, or while the subscriber
        // is dead and nobody noticed yet (the PING interval is the bound).
        bool in_flight = false;
        for (const auto& p : pushes) in_flight |= !p || *p == k;
        bool undetected = sub_id == 0 && !sub_known_lost;
        if (!in_flight && !undetected) {
          return fail("stale: stale hit on " + k + " at time " + std::to_string(now));
        }
        stale_hits++;
        break;
      }
    }
    return true;
  }
};

}  // namespace cache_model

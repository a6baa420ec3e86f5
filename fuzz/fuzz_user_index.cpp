// libFuzzer target: the replies of the per-user session index (src/core/user_index.h).
//
// Input: any bytes, parsed as RESP2 replies with the default limits (what the Redis client
// uses for these commands). Each complete reply is given to every classifier.
// Properties:
//   scan   - Done exactly for [a bulk cursor of 1-20 decimal digits, an array of bulk strings];
//            then the cursor is that text, members and junk split the array in its order
//            (members index_member_valid, junk not); an error reply is Refused; otherwise
//            Failed with cursor, members and junk empty.
//   add    - Done exactly for an array of bulk strings; the sample is its valid members, in
//            order. Error: Refused.
//   exists - Done exactly for an integer (exists = nonzero); anything else keeps exists true
//            (nothing is pruned on a doubt).
//   end    - Ended/Missing/NotUsers exactly for the integers 1/0/-1; an error is Refused;
//            anything else Failed; only the first three let an entry leave the index.
//   remove - Done exactly for an integer.
#include <string>
#include <vector>

#include "resp.h"
#include "user_index.h"

#include "fuzz_check.h"

namespace {

using sess::EndOutcome;
using sess::IndexReply;
using sess::RespType;
using sess::RespValue;

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool bulks(const RespValue& v) {
  for (const RespValue& e : v.elements) {
    if (e.type != RespType::Bulk) return false;
  }
  return true;
}

void check(const RespValue& r) {
  // A WRONGTYPE error (a key of another type at the index) is told apart from other refusals.
  const bool wrongtype = r.type == RespType::Error && r.str.compare(0, 10, "WRONGTYPE ") == 0;
  const bool error = r.type == RespType::Error && !wrongtype;

  std::string cursor;
  std::vector<std::string> members, junk;
  IndexReply s = sess::index_scan_reply(&r, &cursor, &members, &junk);
  const bool scan_ok = r.type == RespType::Array && r.elements.size() == 2 &&
                       r.elements[0].type == RespType::Bulk && all_digits(r.elements[0].str) &&
                       r.elements[1].type == RespType::Array && bulks(r.elements[1]);
  FUZZ_CHECK((s == IndexReply::Done) == scan_ok);
  FUZZ_CHECK((s == IndexReply::Refused) == error);
  FUZZ_CHECK((s == IndexReply::WrongType) == wrongtype);
  if (scan_ok) {
    FUZZ_CHECK(cursor == r.elements[0].str);
    size_t m = 0, j = 0;
    for (const RespValue& e : r.elements[1].elements) {
      if (sess::index_member_valid(e.str)) {
        FUZZ_CHECK(m < members.size() && members[m++] == e.str);
      } else {
        FUZZ_CHECK(j < junk.size() && junk[j++] == e.str);
      }
    }
    FUZZ_CHECK(m == members.size() && j == junk.size());
  } else {
    FUZZ_CHECK(cursor.empty() && members.empty() && junk.empty());
  }

  std::vector<std::string> sample;
  IndexReply a = sess::index_add_reply(&r, &sample);
  const bool add_ok = r.type == RespType::Array && bulks(r);
  FUZZ_CHECK((a == IndexReply::Done) == add_ok);
  FUZZ_CHECK((a == IndexReply::Refused) == error);
  FUZZ_CHECK((a == IndexReply::WrongType) == wrongtype);
  if (add_ok) {
    size_t k = 0;
    for (const RespValue& e : r.elements) {
      if (sess::index_member_valid(e.str)) FUZZ_CHECK(k < sample.size() && sample[k++] == e.str);
    }
    FUZZ_CHECK(k == sample.size());
  }

  bool exists = false;
  IndexReply x = sess::index_exists_reply(&r, &exists);
  FUZZ_CHECK((x == IndexReply::Done) == (r.type == RespType::Integer));
  FUZZ_CHECK(exists == (r.type != RespType::Integer || r.integer != 0));
  FUZZ_CHECK((sess::index_remove_reply(&r) == IndexReply::Done) == (r.type == RespType::Integer));

  EndOutcome o = sess::index_end_outcome(&r);
  const bool in = r.type == RespType::Integer;
  FUZZ_CHECK((o == EndOutcome::Ended) == (in && r.integer == 1));
  FUZZ_CHECK((o == EndOutcome::Missing) == (in && r.integer == 0));
  FUZZ_CHECK((o == EndOutcome::NotUsers) == (in && r.integer == -1));
  FUZZ_CHECK((o == EndOutcome::NoUser) == (in && r.integer == -2));
  FUZZ_CHECK((o == EndOutcome::Moved) == (in && r.integer == 2));
  FUZZ_CHECK((o == EndOutcome::Refused) == (error || wrongtype));
  // Final (the entry may leave the index): ended, missing, another user's, moved - never a
  // record without a user (a session_set may be giving it one) nor an unknown or failed reply.
  FUZZ_CHECK(sess::end_outcome_final(o) == (in && r.integer >= -1 && r.integer <= 2));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  sess::RespParser p;
  const sess::RespLimits limits;
  for (int n = 0; n < 64 && !in.empty(); n++) {
    RespValue v;
    size_t used = 0;
    sess::RespParser::Result res = p.feed(in, limits, &used, &v);
    in.remove_prefix(used);
    if (res == sess::RespParser::Result::Reply) {
      check(v);
    } else if (res != sess::RespParser::Result::TooLarge) {
      break;
    }
  }
  // No reply at all: nothing is Done, nothing is pruned.
  std::string cursor;
  std::vector<std::string> m, j;
  FUZZ_CHECK(sess::index_scan_reply(nullptr, &cursor, &m, &j) == IndexReply::Failed);
  bool exists = false;
  FUZZ_CHECK(sess::index_exists_reply(nullptr, &exists) == IndexReply::Failed && exists);
  FUZZ_CHECK(sess::index_end_outcome(nullptr) == EndOutcome::Failed);
  return 0;
}

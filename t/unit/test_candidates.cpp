// Unit tests for candidates.h: which of several session cookies of one name is the session.
#include "candidates.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using sess::CandidateVerdict;
using sess::LoadStatus;
using sess::Selection;

namespace {

constexpr CandidateVerdict M = CandidateVerdict::Malformed;
constexpr CandidateVerdict B = CandidateVerdict::BadMac;
constexpr CandidateVerdict F = CandidateVerdict::FutureDated;
constexpr CandidateVerdict E = CandidateVerdict::Expired;
constexpr CandidateVerdict V = CandidateVerdict::Valid;

const char* name(LoadStatus s) {
  switch (s) {
    case LoadStatus::None: return "None";
    case LoadStatus::Valid: return "Valid";
    case LoadStatus::Expired: return "Expired";
    case LoadStatus::Invalid: return "Invalid";
    case LoadStatus::Error: return "Error";
  }
  return "?";
}

Selection select(const std::vector<CandidateVerdict>& v) {
  return sess::select_candidate(v.data(), v.size());
}

}  // namespace

// One row per rule of the header. `index` is checked where the status names a candidate
// (Valid: the chosen one; Expired: an expired one).
TEST(SelectCandidate, Table) {
  const struct {
    const char* what;
    std::vector<CandidateVerdict> verdicts;
    LoadStatus status;
    bool tossing;
    size_t index;
  } rows[] = {
      // No candidate at all.
      {"no cookie", {}, LoadStatus::None, false, 0},
      // Exactly one verifies and is within its lifetime: that one is the session.
      {"one valid cookie", {V}, LoadStatus::Valid, false, 0},
      {"a planted forgery before ours", {B, V}, LoadStatus::Valid, false, 1},
      {"a planted forgery after ours", {V, B}, LoadStatus::Valid, false, 0},
      {"garbage of every kind around ours", {M, F, B, V, M}, LoadStatus::Valid, false, 3},
      {"ours among expired ones", {E, V, E}, LoadStatus::Valid, false, 1},
      {"ours last of the most a request keeps", {B, B, B, B, B, B, B, V}, LoadStatus::Valid,
       false, 7},
      // Two or more (different values) verify: cookie tossing, no session.
      {"two valid cookies", {V, V}, LoadStatus::Invalid, true, 0},
      {"two valid among others", {B, V, E, V, M}, LoadStatus::Invalid, true, 0},
      {"three valid cookies", {V, V, V}, LoadStatus::Invalid, true, 0},
      // None verifies: Expired if one verified but has expired, else Invalid.
      {"one expired cookie", {E}, LoadStatus::Expired, false, 0},
      {"an expired one after a forgery", {B, E}, LoadStatus::Expired, false, 1},
      {"two expired cookies", {E, E}, LoadStatus::Expired, false, 0},
      {"bad MAC", {B}, LoadStatus::Invalid, false, 0},
      {"malformed", {M}, LoadStatus::Invalid, false, 0},
      {"future-dated", {F}, LoadStatus::Invalid, false, 0},
      {"only broken ones", {M, B, F}, LoadStatus::Invalid, false, 0},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.what);
    const Selection s = select(r.verdicts);
    EXPECT_STREQ(name(s.status), name(r.status));
    EXPECT_EQ(s.tossing, r.tossing);
    if (s.status == LoadStatus::Valid) {
      EXPECT_EQ(s.index, r.index);
    } else if (s.status == LoadStatus::Expired) {
      ASSERT_LT(s.index, r.verdicts.size());
      EXPECT_EQ(r.verdicts[s.index], E);
    }
  }
}

// Every list of up to five verdicts against the rules stated independently.
TEST(SelectCandidate, EveryCombination) {
  const CandidateVerdict all[] = {M, B, F, E, V};
  for (size_t n = 0; n <= 5; n++) {
    size_t combos = 1;
    for (size_t i = 0; i < n; i++) combos *= 5;
    for (size_t c = 0; c < combos; c++) {
      std::vector<CandidateVerdict> v;
      size_t rest = c;
      size_t valid = 0, expired = 0;
      for (size_t i = 0; i < n; i++) {
        v.push_back(all[rest % 5]);
        rest /= 5;
        valid += v.back() == V;
        expired += v.back() == E;
      }
      const Selection s = select(v);
      SCOPED_TRACE("n " + std::to_string(n) + " combination " + std::to_string(c));
      EXPECT_NE(s.status, LoadStatus::Error);  // a verdict list never means the store failed
      EXPECT_EQ(s.tossing, valid >= 2);
      if (n == 0) {
        EXPECT_EQ(s.status, LoadStatus::None);
      } else if (valid == 1) {
        EXPECT_EQ(s.status, LoadStatus::Valid);
        ASSERT_LT(s.index, n);
        EXPECT_EQ(v[s.index], V);
      } else if (valid >= 2) {
        EXPECT_EQ(s.status, LoadStatus::Invalid);
      } else if (expired != 0) {
        EXPECT_EQ(s.status, LoadStatus::Expired);
        ASSERT_LT(s.index, n);
        EXPECT_EQ(v[s.index], E);
      } else {
        EXPECT_EQ(s.status, LoadStatus::Invalid);
      }
      if (HasFailure()) return;
    }
  }
}

TEST(SelectCandidate, OrderDoesNotDecideWhichSessionWins) {
  // A sibling's planted session and ours, in either order: neither is picked.
  EXPECT_EQ(select({V, V}).status, LoadStatus::Invalid);
  // One valid: the same status wherever it stands.
  for (size_t pos = 0; pos < 4; pos++) {
    std::vector<CandidateVerdict> v(4, B);
    v[pos] = V;
    const Selection s = select(v);
    EXPECT_EQ(s.status, LoadStatus::Valid);
    EXPECT_EQ(s.index, pos);
  }
}

// A cookie shared with an app that reads the first one of the name (Flask): every candidate
// whose signature verified counts, whatever it is here.
TEST(SelectCandidateShared, EveryAuthenticCandidateCounts) {
  struct Row {
    std::vector<CandidateVerdict> v;
    std::vector<bool> authentic;
    LoadStatus status;
    bool tossing;
  };
  const Row rows[] = {
      {{V}, {true}, LoadStatus::Valid, false},
      {{V, B}, {true, false}, LoadStatus::Valid, false},       // a forgery does not count
      {{M, V}, {false, true}, LoadStatus::Valid, false},       // nor does garbage
      {{M, V}, {true, true}, LoadStatus::Invalid, true},       // signed, too big to read here
      {{V, E}, {true, true}, LoadStatus::Invalid, true},       // signed, expired
      {{E, V}, {true, true}, LoadStatus::Invalid, true},
      {{E, M}, {true, true}, LoadStatus::Invalid, true},
      {{E}, {true}, LoadStatus::Expired, false},
      {{M}, {true}, LoadStatus::Invalid, false},
      {{V, V}, {true, true}, LoadStatus::Invalid, true},
  };
  for (const Row& row : rows) {
    bool a[8];
    for (size_t i = 0; i < row.authentic.size(); i++) a[i] = row.authentic[i];
    Selection s = sess::select_candidate_shared(row.v.data(), a, row.v.size());
    EXPECT_STREQ(name(s.status), name(row.status));
    EXPECT_EQ(s.tossing, row.tossing);
  }
}

// Review of the perf commits (56e3bcc..f207061): the new cookie scanner (for_each_value behind
// cookie_find / cookie_collect) must report exactly what the generic cookie_for_each_pair scan
// reports, for ANY header and ANY name. Exhaustive over short headers of a hostile alphabet
// (SP, HTAB, '=', ';', DQUOTE, letters, a NUL and a high byte) and a set of awkward names.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "cookie.h"

namespace {

struct Ref {
  std::vector<std::string_view> all;       // every occurrence's value
  std::vector<std::string_view> distinct;  // distinct values in order
};

Ref reference(std::string_view header, std::string_view name) {
  Ref r;
  if (name.empty()) return r;  // (cookie_find documents an empty name as never matching)
  sess::cookie_for_each_pair(header, [&](std::string_view n, std::string_view v) noexcept {
    if (n != name) return;
    r.all.push_back(v);
    for (auto d : r.distinct) {
      if (d == v) return;
    }
    r.distinct.push_back(v);
  });
  return r;
}

void check(std::string_view header, std::string_view name) {
  Ref ref = reference(header, name);
  sess::CookieLookup acc;
  sess::cookie_find(header, name, acc);
  ASSERT_EQ(acc.count, ref.all.size()) << "header [" << header << "] name [" << name << "]";
  if (!ref.all.empty()) {
    ASSERT_EQ(acc.value, ref.all[0]) << "header [" << header << "] name [" << name << "]";
    ASSERT_EQ(acc.value.data(), ref.all[0].data());
    ASSERT_EQ(acc.conflicting, ref.distinct.size() > 1);
  }
  sess::CookieCandidates cand;
  sess::cookie_collect(header, name, cand);
  ASSERT_EQ(cand.occurrences, ref.all.size()) << "header [" << header << "] name [" << name << "]";
  const size_t want = ref.distinct.size() < sess::CookieCandidates::kMax
                          ? ref.distinct.size()
                          : sess::CookieCandidates::kMax;
  ASSERT_EQ(cand.count, want);
  ASSERT_EQ(cand.overflow, ref.distinct.size() > sess::CookieCandidates::kMax);
  for (size_t i = 0; i < cand.count; i++) {
    ASSERT_EQ(cand.values[i], ref.distinct[i]) << "header [" << header << "] name [" << name << "]";
    ASSERT_EQ(cand.values[i].data(), ref.distinct[i].data());
  }
}

const std::vector<std::string> kNames = {
    "a", "ab", "b", "a ", " a", "a\t", "\ta", "a=", "=a", "=", "a=b", "a;", ";a", "a b",
    "\"a", "a\"", " ", "\t", ";", "\"", "a a", "aa", "aaa", "a=a", "a\x01", std::string("a\0", 2),
};

// Every header up to length 6 over a small hostile alphabet, against every name above.
TEST(ReviewPerfCookieScan, ExhaustiveShortHeadersAgreeWithGenericScan) {
  const char alphabet[] = {'a', 'b', '=', ';', ' ', '\t', '"'};
  const size_t k = sizeof alphabet;
  for (size_t len = 0; len <= 6; len++) {
    std::vector<size_t> idx(len, 0);
    std::string h(len, 'a');
    for (;;) {
      for (size_t i = 0; i < len; i++) h[i] = alphabet[idx[i]];
      for (const auto& n : kNames) {
        check(h, n);
        if (::testing::Test::HasFatalFailure()) return;
      }
      size_t p = 0;
      while (p < len && ++idx[p] == k) idx[p++] = 0;
      if (p == len) break;
    }
  }
}

// Long names / long headers (the word-compare path, names of 8+ bytes, many pairs).
TEST(ReviewPerfCookieScan, LongNamesAndHeaders) {
  const std::vector<std::string> names = {"session", "session_1", "sessionsession_x",
                                          "a_very_long_cookie_name_of_40_bytes_xxxxx", "session "};
  std::vector<std::string> headers;
  for (const auto& n : names) {
    headers.push_back(n + "=v1; " + n + " = v2 ;" + n + "=\"v3\"; x" + n + "=v4;" + n + "x=v5");
    headers.push_back(" \t" + n + "\t=\t\"\"\t; " + n + "=;" + n + ";" + n + "= = ;");
    headers.push_back(n.substr(0, n.size() - 1) + "=q; " + n + "==; =" + n + "=z");
    std::string many;
    for (int i = 0; i < 40; i++) many += n + "=" + std::to_string(i % 11) + (i % 3 ? "; " : ";");
    headers.push_back(many);
    headers.push_back(std::string(5000, ' ') + n + "=big" + std::string(5000, ';'));
  }
  for (const auto& h : headers) {
    for (const auto& n : names) {
      check(h, n);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

}  // namespace

// libFuzzer target: application/x-www-form-urlencoded decoding (src/core/form.h).
//
// Input: MAX(1) | BODY. max_fields = MAX % 80 (so both limits and "no fields allowed" are hit).
// Properties:
//   form_decode   - agrees with an independent reference (result, fields, bytes); on failure the
//                   existing entries of out are kept and nothing is added; Ok => at most
//                   max_fields fields.
//   round trip    - re-encoding the fields with query_escape and decoding again gives the same
//                   fields; form_get returns the first field of a name.
//   percent_decode - agrees with the reference (no '+' rule); on failure out is unchanged.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "form.h"
#include "redirect.h"

#include "fuzz_check.h"

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ref_unescape(std::string_view in, bool plus, std::string* out) {
  for (size_t i = 0; i < in.size(); i++) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;  // needs two more bytes
      const int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out->push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (plus && in[i] == '+') {
      out->push_back(' ');
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

enum class Ref { Ok, Malformed, TooMany };

Ref ref_decode(std::string_view body, size_t max, std::vector<std::pair<std::string, std::string>>* f) {
  size_t start = 0;
  for (;;) {
    const size_t amp = body.find('&', start);
    const std::string_view pair =
        body.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!pair.empty()) {
      if (f->size() == max) return Ref::TooMany;
      const size_t eq = pair.find('=');
      std::string k, v;
      if (!ref_unescape(pair.substr(0, eq), true, &k)) return Ref::Malformed;
      if (eq != std::string_view::npos && !ref_unescape(pair.substr(eq + 1), true, &v)) {
        return Ref::Malformed;
      }
      f->emplace_back(std::move(k), std::move(v));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return Ref::Ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t max_fields = data[0] % 80;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  sess::FormFields out;
  out.emplace_back(sess::pstring("sentinel"), sess::pstring("kept"));
  const sess::FormResult res = sess::form_decode(body, out, max_fields);

  std::vector<std::pair<std::string, std::string>> ref;
  const Ref rres = ref_decode(body, max_fields, &ref);
  FUZZ_CHECK(static_cast<int>(res) == static_cast<int>(rres));
  FUZZ_CHECK(!out.empty() && out[0].first == "sentinel" && out[0].second == "kept");
  if (res != sess::FormResult::Ok) {
    FUZZ_CHECK(out.size() == 1);
  } else {
    FUZZ_CHECK(out.size() == 1 + ref.size() && ref.size() <= max_fields);
    for (size_t i = 0; i < ref.size(); i++) {
      FUZZ_CHECK(std::string_view(out[i + 1].first) == ref[i].first &&
                 std::string_view(out[i + 1].second) == ref[i].second);
    }

    // Re-encode with query_escape and decode again: the same fields.
    sess::pstring body2;
    for (size_t i = 1; i < out.size(); i++) {
      if (i > 1) body2.push_back('&');
      sess::query_escape(out[i].first, body2);
      body2.push_back('=');
      sess::query_escape(out[i].second, body2);
    }
    sess::FormFields again;
    FUZZ_CHECK(sess::form_decode(body2, again, max_fields) == sess::FormResult::Ok);
    FUZZ_CHECK(again.size() + 1 == out.size());
    for (size_t i = 0; i < again.size(); i++) {
      FUZZ_CHECK(again[i].first == out[i + 1].first && again[i].second == out[i + 1].second);
      const sess::pstring* g = sess::form_get(again, again[i].first);
      FUZZ_CHECK(g != nullptr);
      size_t first = 0;
      while (again[first].first != again[i].first) first++;
      FUZZ_CHECK(g == &again[first].second);
    }
  }

  // percent_decode (no '+' handling), appending; unchanged on failure.
  sess::pstring pd("pre");
  std::string rpd;
  const bool ok = sess::percent_decode(body, pd);
  FUZZ_CHECK(ok == ref_unescape(body, false, &rpd));
  if (ok) {
    FUZZ_CHECK(pd.compare(0, 3, "pre") == 0 && std::string_view(pd).substr(3) == rpd);
  } else {
    FUZZ_CHECK(pd == "pre");
  }
  return 0;
}

// libFuzzer target: SessionData JSON codec (src/core/session_data.h).
//
// Input: any bytes, decoded as a session JSON object. The input is also split at its first NUL
// (or in the middle) into a key and a value for set_string.
// Properties:
//   decode fails  => the data is empty.
//   decode ok     => at most kMaxKeys unique keys; string values are well-formed UTF-8;
//                    encode(d) has no raw control bytes and decodes again to exactly the same
//                    keys, texts and kinds; encode of that is byte-identical (encode/decode is a
//                    fixed point); the same happens with a monotonic (pool-like) memory resource.
//   set_string    => encode always produces JSON that decode accepts; well-formed UTF-8 key and
//                    value come back verbatim; the key count grows by at most one.
//   erase/get     => consistent with the decoded contents.
//   session_key_valid agrees with its definition (1-64 bytes of [A-Za-z0-9_]).
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <string>

#include "session_data.h"

#include "fuzz_check.h"

namespace {

// RFC 3629 UTF-8 check (reference; written independently of the codec's own).
bool utf8_ok(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; k++) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

bool same(const sess::SessionData& a, const sess::SessionData& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    const auto& x = a.values()[i];
    const auto& y = b.values()[i];
    if (x.key != y.key || x.text != y.text || x.is_string != y.is_string) return false;
  }
  return true;
}

void check_decoded(const sess::SessionData& d) {
  FUZZ_CHECK(d.size() <= sess::SessionData::kMaxKeys);
  for (size_t i = 0; i < d.size(); i++) {
    const auto& v = d.values()[i];
    FUZZ_CHECK(utf8_ok(v.key));
    if (v.is_string) FUZZ_CHECK(utf8_ok(v.text));
    if (!v.is_string) FUZZ_CHECK(!v.text.empty());
    FUZZ_CHECK(d.get(v.key) == &v);  // keys are unique
  }

  sess::pstring e1("<");
  d.encode(e1);
  FUZZ_CHECK(e1.compare(0, 2, "<{") == 0 && e1.back() == '}');
  e1.erase(0, 1);
  for (unsigned char c : e1) FUZZ_CHECK(c >= 0x20 && c != 0x7f);

  sess::SessionData d2;
  FUZZ_CHECK(d2.decode(e1));
  FUZZ_CHECK(same(d, d2));
  sess::pstring e2;
  d2.encode(e2);
  FUZZ_CHECK(e1 == e2);

  // The same through a pool-like resource (the nginx glue backs the data with r->pool).
  char buf[512];
  std::pmr::monotonic_buffer_resource pool(buf, sizeof buf);
  sess::SessionData d3(&pool);
  FUZZ_CHECK(d3.decode(e1));
  FUZZ_CHECK(same(d, d3));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  sess::SessionData d;
  d.set_string("stale", "value");  // decode replaces the contents
  const bool ok = d.decode(in);
  if (!ok) {
    FUZZ_CHECK(d.empty());
  } else {
    check_decoded(d);
  }
  if (ok && !d.empty()) {
    // erase the first key: get() no longer finds it, the rest is intact.
    const std::string first(d.values()[0].key);
    const size_t n = d.size();
    FUZZ_CHECK(d.erase(first));
    FUZZ_CHECK(d.get(first) == nullptr && d.size() == n - 1);
    FUZZ_CHECK(!d.erase(first));
    check_decoded(d);
  }

  // set_string with arbitrary bytes: encode must still produce JSON that decodes.
  const size_t nul = in.find('\0');
  const size_t split = nul != std::string_view::npos ? nul : size / 2;
  const std::string_view key = in.substr(0, split);
  const std::string_view value = in.substr(split < size ? split + 1 : size);
  // session_key_valid: 1-64 bytes of [A-Za-z0-9_].
  bool ref_key = !key.empty() && key.size() <= 64;
  for (unsigned char c : key) ref_key = ref_key && (std::isalnum(c) || c == '_') && c < 0x80;
  FUZZ_CHECK(sess::session_key_valid(key) == ref_key);

  const size_t before = d.size();
  d.set_string(key, value);
  FUZZ_CHECK(d.size() == before || d.size() == before + 1);
  if (d.size() > sess::SessionData::kMaxKeys) return 0;  // decode would refuse: by design
  sess::pstring e;
  d.encode(e);
  sess::SessionData back;
  FUZZ_CHECK(back.decode(e));
  if (utf8_ok(key) && utf8_ok(value)) {
    const sess::SessionValue* v = back.get(key);
    FUZZ_CHECK(v != nullptr && v->is_string && v->text == value);
    FUZZ_CHECK(same(d, back));
  }
  check_decoded(back);
  return 0;
}

// libFuzzer target: session_secret_file parsing and base64_decode_any (src/core/secret_file.h).
//
// Input: the file's text. It is parsed with min_len 32 (strict and allow_short) and min_len 0;
// the whole input (and each line after "base64:") is also decoded by base64_decode_any.
// Properties:
//   secret_file_parse - agrees with an independent reference parser (same secrets, lines,
//                   short_lines, error and error_line); secrets.size() == lines.size(); every
//                   secret is non-empty; a secret has no leading/trailing blank and does not start
//                   with '#' unless its line is base64:; it is at least min_len bytes unless
//                   allow_short (and short_lines counts those that are not); line numbers rise
//                   strictly; on failure nothing is returned; allow_short only adds: a file that
//                   parses strictly parses the same way with allow_short.
//   base64_decode_any - agrees with a bit-accumulator reference decoder (either alphabet, not
//                   both; '=' only as the padding that completes a group of four; canonical
//                   trailing bits).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "secret_file.h"

#include "fuzz_check.h"

namespace {

using sess::SecretFile;
using sess::SecretFileError;

int b64_value(unsigned char c, bool* std_alpha, bool* url_alpha) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '/') {
    *std_alpha = true;
    return c == '+' ? 62 : 63;
  }
  if (c == '-' || c == '_') {
    *url_alpha = true;
    return c == '-' ? 62 : 63;
  }
  return -1;
}

// Reference decoder: a bit accumulator (a different algorithm from the one under test).
bool ref_b64(std::string_view in, std::string* out) {
  out->clear();
  size_t len = in.size();
  size_t pad = 0;
  while (len > 0 && in[len - 1] == '=' && pad < 3) {
    len--;
    pad++;
  }
  if (pad > 2) return false;
  if (pad != 0 && (in.size() % 4 != 0 || (len + pad) % 4 != 0 || len % 4 + pad != 4)) {
    return false;
  }
  if (len % 4 == 1) return false;
  bool s = false, u = false;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    const int v = b64_value(static_cast<unsigned char>(in[i]), &s, &u);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (s && u) return false;
  return (acc & ((1u << bits) - 1)) == 0;
}

bool blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

// Reference parser: split into lines first, then judge each line.
SecretFile ref_parse(std::string_view text, size_t min_len, bool allow_short) {
  SecretFile r;
  if (text.size() >= 3 && std::memcmp(text.data(), "\xEF\xBB\xBF", 3) == 0) text.remove_prefix(3);
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] == '\n') {
      lines.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < text.size()) lines.push_back(text.substr(start));

  auto fail = [&r](SecretFileError e, size_t line) {
    r.secrets.clear();
    r.lines.clear();
    r.short_lines = 0;
    r.error = e;
    r.error_line = line;
    return r;
  };
  for (size_t n = 0; n < lines.size(); n++) {
    std::string_view l = lines[n];
    while (!l.empty() && blank(l.front())) l.remove_prefix(1);
    while (!l.empty() && blank(l.back())) l.remove_suffix(1);
    if (l.empty() || l[0] == '#') continue;
    std::string secret;
    if (l.size() >= 7 && l.compare(0, 7, "base64:") == 0) {
      if (!ref_b64(l.substr(7), &secret) || secret.empty()) {
        return fail(SecretFileError::BadBase64, n + 1);
      }
    } else {
      for (unsigned char c : l) {
        if (c < 0x20 || c == 0x7f) return fail(SecretFileError::Binary, n + 1);
      }
      secret = std::string(l);
    }
    if (secret.size() < min_len) {
      if (!allow_short) return fail(SecretFileError::TooShort, n + 1);
      r.short_lines++;
    }
    r.secrets.push_back(secret);
    r.lines.push_back(n + 1);
  }
  if (r.secrets.empty()) return fail(SecretFileError::NoSecret, 0);
  return r;
}

// The text of line number n (1-based), BOM removed, blanks trimmed.
std::string_view line_of(std::string_view text, size_t n) {
  if (text.size() >= 3 && std::memcmp(text.data(), "\xEF\xBB\xBF", 3) == 0) text.remove_prefix(3);
  for (size_t i = 1; i < n; i++) {
    const size_t nl = text.find('\n');
    FUZZ_CHECK(nl != std::string_view::npos);
    text.remove_prefix(nl + 1);
  }
  std::string_view l = text.substr(0, text.find('\n'));
  while (!l.empty() && blank(l.front())) l.remove_prefix(1);
  while (!l.empty() && blank(l.back())) l.remove_suffix(1);
  return l;
}

SecretFile check(std::string_view text, size_t min_len, bool allow_short) {
  SecretFile f;
  f.secrets.push_back("stale");  // the parser must reset what it is given
  f.error_line = 99;
  const bool ok = sess::secret_file_parse(text, min_len, allow_short, &f);
  FUZZ_CHECK(ok == (f.error == SecretFileError::None));
  FUZZ_CHECK(f.secrets.size() == f.lines.size());

  const SecretFile ref = ref_parse(text, min_len, allow_short);
  FUZZ_CHECK(f.error == ref.error);
  FUZZ_CHECK(f.error_line == ref.error_line);
  FUZZ_CHECK(f.secrets == ref.secrets);
  FUZZ_CHECK(f.lines == ref.lines);
  FUZZ_CHECK(f.short_lines == ref.short_lines);

  if (!ok) {
    FUZZ_CHECK(f.secrets.empty() && f.short_lines == 0);
    FUZZ_CHECK((f.error == SecretFileError::NoSecret) == (f.error_line == 0));
    return f;
  }
  FUZZ_CHECK(!f.secrets.empty() && f.error_line == 0);
  size_t shorts = 0;
  for (size_t i = 0; i < f.secrets.size(); i++) {
    const std::string& s = f.secrets[i];
    FUZZ_CHECK(!s.empty());
    if (i > 0) FUZZ_CHECK(f.lines[i] > f.lines[i - 1]);
    const std::string_view line = line_of(text, f.lines[i]);
    const bool from_b64 = line.substr(0, 7) == "base64:";
    if (!from_b64) {
      FUZZ_CHECK(!blank(s.front()) && !blank(s.back()));
      FUZZ_CHECK(s.front() != '#');
      FUZZ_CHECK(s.find('\n') == std::string::npos && s.find('\0') == std::string::npos);
      FUZZ_CHECK(std::string_view(s) == line);
    }
    if (s.size() < min_len) {
      FUZZ_CHECK(allow_short);
      shorts++;
    }
  }
  FUZZ_CHECK(shorts == f.short_lines);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const SecretFile strict = check(in, 32, false);
  const SecretFile lenient = check(in, 32, true);
  check(in, 0, false);
  if (strict.error == SecretFileError::None) {
    FUZZ_CHECK(lenient.secrets == strict.secrets && lenient.lines == strict.lines);
    FUZZ_CHECK(lenient.short_lines == 0);
  }
  if (lenient.error != SecretFileError::None) {
    FUZZ_CHECK(strict.error != SecretFileError::None);
  }

  // base64_decode_any on the whole input.
  std::string out = "garbage";
  std::string ref;
  const bool ok = sess::base64_decode_any(in, &out);
  FUZZ_CHECK(ok == ref_b64(in, &ref));
  if (ok) FUZZ_CHECK(out == ref);
  return 0;
}

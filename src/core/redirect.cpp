// Safe post-login redirects and the `next` parameter.
#include "redirect.h"

namespace sess {

namespace {

constexpr size_t kMaxRedirectLen = 2048;

// Printable ASCII other than backslash: 0x21-0x7e minus '\'. Excludes space, every control
// byte (so no TAB/CR/LF that browsers strip or split on) and every byte >= 0x80 (so no
// full-width or other look-alike characters that URL parsers may normalise to '/' or '.').
bool allowed_byte(unsigned char c) noexcept { return c >= 0x21 && c <= 0x7e && c != '\\'; }

bool is_slash(unsigned char c) noexcept { return c == '/' || c == '\\'; }

}  // namespace

bool redirect_is_safe(std::string_view next) noexcept {
  const size_t n = next.size();
  if (n == 0 || n > kMaxRedirectLen) return false;

  // The form as given.
  if (next[0] != '/') return false;
  if (n >= 2 && is_slash(static_cast<unsigned char>(next[1]))) return false;
  for (unsigned char c : next) {
    if (!allowed_byte(c)) return false;
  }

  // The form after one more round of percent-decoding, checked byte by byte as it is produced
  // (no allocation). The first byte is the literal '/' checked above.
  size_t out_index = 0;
  for (size_t i = 0; i < n; out_index++) {
    unsigned char c = static_cast<unsigned char>(next[i]);
    if (c == '%') {
      if (n - i < 3) return false;
      const int hi = hex_value(next[i + 1]);
      const int lo = hex_value(next[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<unsigned char>((hi << 4) | lo);
      i += 3;
    } else {
      i++;
    }
    // Decoded, an encoded space inside the path ("/a%20b") or a UTF-8 byte ("/caf%C3%A9") is
    // an ordinary path: the redirect sends the encoded form, which browsers keep as a path.
    // Control bytes and backslashes (which browsers strip or turn into '/') are not.
    if (!allowed_byte(c) && !(c == ' ' && out_index >= 2) && c < 0x80) return false;
    if (out_index == 1 && is_slash(c)) return false;
  }
  return true;
}

void query_escape(std::string_view in, pstring& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t extra = 0;
  auto keep = [](unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
  };
  for (unsigned char c : in) {
    if (!keep(c)) extra += 2;
  }
  out.reserve(out.size() + in.size() + extra);
  size_t run = 0;
  for (size_t i = 0; i < in.size(); i++) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (keep(c)) continue;
    out.append(in.data() + run, i - run);
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
    run = i + 1;
  }
  out.append(in.data() + run, in.size() - run);
}

}  // namespace sess

// session_secret_file parsing (see secret_file.h).
#include "secret_file.h"

#include <openssl/crypto.h>

#include "base64url.h"

namespace sess {

namespace {

constexpr std::string_view kBase64Prefix = "base64:";
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

std::string_view trim_blanks(std::string_view s) noexcept {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && is_blank(s[b])) b++;
  while (e > b && is_blank(s[e - 1])) e--;
  return s.substr(b, e - b);
}

void wipe(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

void wipe(pstring& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

bool fail(SecretFile* out, SecretFileError e, size_t line) {
  for (std::string& s : out->secrets) wipe(s);
  out->secrets.clear();
  out->lines.clear();
  out->short_lines = 0;
  out->error = e;
  out->error_line = line;
  return false;
}

}  // namespace

bool base64_decode_any(std::string_view in, std::string* out) {
  out->clear();
  // Padding: only at the end, at most two, and only to complete the last group of four.
  size_t pad = 0;
  while (pad < in.size() && in[in.size() - 1 - pad] == '=') pad++;
  const std::string_view body = in.substr(0, in.size() - pad);
  if (pad > 2) return false;
  if (pad > 0 && (in.size() % 4 != 0 || body.size() % 4 != 4 - pad)) return false;

  // One alphabet per value: standard ('+' '/') or URL-safe ('-' '_'), never both.
  bool standard = false, url = false;
  std::string text(body);
  for (char& c : text) {
    if (c == '+' || c == '/') {
      standard = true;
      c = c == '+' ? '-' : '_';
    } else if (c == '-' || c == '_') {
      url = true;
    }
  }
  bool ok = !(standard && url);
  pstring decoded;
  if (ok) ok = base64url_decode(text, decoded);  // also refuses '=' inside, bad lengths and bits
  if (ok) out->assign(decoded.data(), decoded.size());
  wipe(text);
  wipe(decoded);
  return ok;
}

bool secret_file_parse(std::string_view text, size_t min_len, bool allow_short,
                       SecretFile* out) {
  for (std::string& s : out->secrets) wipe(s);
  *out = SecretFile{};
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());

  size_t lineno = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    lineno++;

    const std::string_view line = trim_blanks(raw);
    if (line.empty() || line.front() == '#') continue;

    std::string secret;
    if (line.substr(0, kBase64Prefix.size()) == kBase64Prefix) {
      if (!base64_decode_any(line.substr(kBase64Prefix.size()), &secret) || secret.empty()) {
        return fail(out, SecretFileError::BadBase64, lineno);
      }
    } else {
      if (has_ctl(line)) return fail(out, SecretFileError::Binary, lineno);
      secret.assign(line.data(), line.size());
    }

    if (secret.size() < min_len) {
      if (!allow_short) {
        wipe(secret);
        return fail(out, SecretFileError::TooShort, lineno);
      }
      out->short_lines++;
    }
    out->secrets.push_back(std::move(secret));
    out->lines.push_back(lineno);
  }
  if (out->secrets.empty()) return fail(out, SecretFileError::NoSecret, 0);
  return true;
}

}  // namespace sess

// libFuzzer target: htpasswd parsing and (cheap formats only) verification (src/core/htpasswd.h).
//
// bcrypt and SHA-crypt are never verified here (tens of milliseconds per call would starve the
// fuzzer); only {SHA}, {SSHA} and $apr1$ hashes reach htpasswd_verify / htpasswd_dummy_hash.
//
// Input: MODE(1) | DATA
//   MODE % 4 == 0  DATA is one line: htpasswd_parse_line
//   MODE % 4 == 1  DATA is "USER\0FILE": htpasswd_find (and parse_line on every line)
//   MODE % 4 == 2  DATA is "PASSWORD\0HASH-REST": htpasswd_verify(PASSWORD, PREFIX + HASH-REST)
//                  with PREFIX = {SHA}, {SSHA} or $apr1$ chosen by (MODE >> 2) % 3; plus a
//                  positive check with a {SHA}/{SSHA} hash of PASSWORD computed here
//   MODE % 4 == 3  DATA is a "like" hash for htpasswd_dummy_hash, with PREFIX as above or none
// Properties:
//   parse_line - agrees with a reference: line ends at the first CR/LF; not empty, not '#', a
//                ':' after a non-empty user; hash ends at the next ':'; views point into DATA.
//   find       - agrees with a reference scan (first matching line); the hash points into FILE.
//   verify     - never true for a hash of another password; true for a correct {SHA}/{SSHA}.
//   dummy      - same kind as `like` ($apr1$ for unknown), parses as a line, and the empty
//                password does not match it.
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "htpasswd.h"

#include "fuzz_check.h"

namespace {

constexpr std::string_view kPrefixes[3] = {"{SHA}", "{SSHA}", "$apr1$"};

bool within(std::string_view outer, std::string_view inner) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

bool ref_parse(std::string_view line, std::string_view* user, std::string_view* hash) {
  for (size_t i = 0; i < line.size(); i++) {
    if (line[i] == '\r' || line[i] == '\n') {
      line = line.substr(0, i);
      break;
    }
  }
  if (line.empty() || line[0] == '#') return false;
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  *user = line.substr(0, colon);
  std::string_view h = line.substr(colon + 1);
  *hash = h.substr(0, h.find(':'));
  return true;
}

constexpr size_t kSha1Len = 20;

void sha1(std::string_view in, unsigned char* out) {
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), out, &len, EVP_sha1(), nullptr) != 1 || len != kSha1Len) {
    std::abort();
  }
}

std::string b64(const unsigned char* p, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

void check_parse_line(std::string_view line) {
  std::string_view u = "x", h = "y";
  const bool ok = sess::htpasswd_parse_line(line, &u, &h);
  std::string_view ru, rh;
  FUZZ_CHECK(ok == ref_parse(line, &ru, &rh));
  if (ok) {
    FUZZ_CHECK(u == ru && h == rh);
    FUZZ_CHECK(u.data() == line.data() && within(line, h));
    FUZZ_CHECK(!u.empty() && u[0] != '#');
    FUZZ_CHECK(u.find_first_of(":\r\n") == std::string_view::npos);
    FUZZ_CHECK(h.find_first_of(":\r\n") == std::string_view::npos);
  }
  // Null out-pointers are allowed.
  FUZZ_CHECK(sess::htpasswd_parse_line(line, nullptr, nullptr) == ok);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const unsigned mode = bytes[0];
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const size_t nul = data.find('\0');
  const std::string_view first = data.substr(0, nul);
  const std::string_view second =
      nul == std::string_view::npos ? std::string_view() : data.substr(nul + 1);
  const std::string_view prefix = kPrefixes[(mode >> 2) % 3];

  // Cheap and total: the classifier never looks past the prefix.
  (void)sess::htpasswd_hash_kind(data);

  switch (mode % 4) {
    case 0:
      check_parse_line(data);
      break;

    case 1: {
      const std::string_view user = first, file = second;
      std::string_view h = "unset";
      const bool found = sess::htpasswd_find(file, user, &h);
      // Reference: lines split on CR and on LF, first line whose user matches.
      bool ref_found = false;
      std::string_view ref_h;
      if (!user.empty()) {
        size_t pos = 0;
        while (pos <= file.size() && !ref_found) {
          size_t eol = file.find_first_of("\r\n", pos);
          if (eol == std::string_view::npos) eol = file.size();
          const std::string_view line = file.substr(pos, eol - pos);
          check_parse_line(line);
          std::string_view lu, lh;
          if (ref_parse(line, &lu, &lh) && lu == user) {
            ref_found = true;
            ref_h = lh;
          }
          pos = eol + 1;
        }
      }
      FUZZ_CHECK(found == ref_found);
      if (found) FUZZ_CHECK(h.data() == ref_h.data() && h.size() == ref_h.size() && within(file, h));
      FUZZ_CHECK(sess::htpasswd_find(file, user, nullptr) == found);
      break;
    }

    case 2: {
      const std::string_view password = first;
      const std::string hash = std::string(prefix) + std::string(second);
      const sess::HashKind kind = sess::htpasswd_hash_kind(hash);
      FUZZ_CHECK(kind == sess::HashKind::Sha1 || kind == sess::HashKind::Ssha ||
                 kind == sess::HashKind::Apr1);
      const bool v = sess::htpasswd_verify(password, hash);
      if (password.size() >= 512) FUZZ_CHECK(!v);  // bounded cost for huge passwords

      // A correct {SHA} and {SSHA} (salt = HASH-REST) of the password must verify; a wrong
      // password must not.
      if (password.size() < 512) {
        unsigned char d[kSha1Len];
        sha1(password, d);
        const std::string sha = "{SHA}" + b64(d, sizeof d);
        FUZZ_CHECK(sess::htpasswd_verify(password, sha));
        FUZZ_CHECK(!sess::htpasswd_verify(std::string(password) + "x", sha));

        const std::string salt(second.substr(0, 64));
        std::string salted = std::string(password) + salt;
        sha1(salted, d);
        std::string raw(reinterpret_cast<const char*>(d), sizeof d);
        raw += salt;
        const std::string ssha =
            "{SSHA}" + b64(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
        FUZZ_CHECK(sess::htpasswd_verify(password, ssha));
        FUZZ_CHECK(!sess::htpasswd_verify(std::string(password) + "x", ssha));
      }
      break;
    }

    case 3: {
      // (mode >> 2) % 4 == 3: no prefix at all (an unknown format).
      const bool unknown = ((mode >> 2) & 3) == 3;
      const std::string like = (unknown ? std::string() : std::string(prefix)) + std::string(data);
      sess::HashKind kind = sess::htpasswd_hash_kind(like);
      if (kind != sess::HashKind::Sha1 && kind != sess::HashKind::Ssha &&
          kind != sess::HashKind::Apr1 && kind != sess::HashKind::Unknown) {
        break;  // data itself began with a costly prefix ($2y$, $5$, $6$): not here
      }
      const std::string dummy = sess::htpasswd_dummy_hash(like);
      if (kind == sess::HashKind::Unknown) kind = sess::HashKind::Apr1;
      FUZZ_CHECK(sess::htpasswd_hash_kind(dummy) == kind);
      FUZZ_CHECK(dummy.find_first_of(":\r\n") == std::string::npos);
      const std::string line = "user:" + dummy;
      std::string_view u, h;
      FUZZ_CHECK(sess::htpasswd_parse_line(line, &u, &h) && u == "user" && h == dummy);
      FUZZ_CHECK(!sess::htpasswd_verify("", dummy));
      break;
    }
  }
  return 0;
}

// htpasswd users and password verification (see htpasswd.h).
//
// Thread safety: nothing here has static mutable state. bcrypt and SHA-crypt go through
// libxcrypt's crypt_rn with a per-call, heap-allocated struct crypt_data; $apr1$, {SHA} and
// {SSHA} use per-call OpenSSL EVP objects. The only statics are constant tables.

#include "htpasswd.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace sess {

namespace {

constexpr std::string_view kBcrypt2y = "$2y$";
constexpr std::string_view kBcrypt2b = "$2b$";
constexpr std::string_view kBcrypt2a = "$2a$";
constexpr std::string_view kApr1 = "$apr1$";
constexpr std::string_view kSha = "{SHA}";
constexpr std::string_view kSsha = "{SSHA}";
constexpr std::string_view kSha256 = "$5$";
constexpr std::string_view kSha512 = "$6$";

constexpr size_t kSha1Len = 20;
constexpr size_t kMd5Len = 16;
constexpr size_t kApr1MaxSalt = 8;
constexpr size_t kSshaDummySalt = 8;
constexpr size_t kSshaMaxSalt = 64;
constexpr size_t kShaCryptSaltLen = 16;

bool starts_with(std::string_view s, std::string_view p) noexcept {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

bool has_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }

// ---------------------------------------------------------------------------------------------
// Standard base64 (RFC 4648 section 4) with padding, as used by {SHA} and {SSHA}.

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict decoding: length a multiple of 4, padding only at the end, canonical trailing bits.
bool b64_decode(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') pad = (in[in.size() - 2] == '=') ? 2 : 1;
  const size_t body = in.size() - pad;
  out->reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < body; i++) {
    int v = b64_value(in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// OpenSSL helpers (OpenSSL 3, non-deprecated API).

struct MdDeleter {
  void operator()(EVP_MD* md) const noexcept { EVP_MD_free(md); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdPtr = std::unique_ptr<EVP_MD, MdDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// Digest of the concatenation a || b. Returns false on any OpenSSL failure.
bool digest2(const char* alg, std::string_view a, std::string_view b, unsigned char* out,
             size_t out_len) noexcept {
  MdPtr md(EVP_MD_fetch(nullptr, alg, nullptr));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!md || !ctx) return false;
  if (static_cast<size_t>(EVP_MD_get_size(md.get())) != out_len) return false;
  unsigned int len = 0;
  return EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) == 1 &&
         EVP_DigestUpdate(ctx.get(), a.data(), a.size()) == 1 &&
         EVP_DigestUpdate(ctx.get(), b.data(), b.size()) == 1 &&
         EVP_DigestFinal_ex(ctx.get(), out, &len) == 1 && len == out_len;
}

void random_bytes(unsigned char* p, size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) != 1) {
    throw std::runtime_error("htpasswd: RAND_bytes failed");
  }
}

// A random password (64 hex chars: no NUL, under bcrypt's 72-byte limit) that nobody will type.
std::string random_password() {
  unsigned char r[32];
  random_bytes(r, sizeof r);
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (unsigned char c : r) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  OPENSSL_cleanse(r, sizeof r);
  return s;
}

// ---------------------------------------------------------------------------------------------
// crypt(3) alphabet ("./0-9A-Za-z"), shared by $apr1$ and SHA-crypt salts and output.

constexpr char kItoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

std::string random_crypt_salt(size_t n) {
  unsigned char r[64];
  if (n > sizeof r) n = sizeof r;
  random_bytes(r, n);
  std::string s;
  s.reserve(n);
  for (size_t i = 0; i < n; i++) s += kItoa64[r[i] & 63];
  return s;
}

// ---------------------------------------------------------------------------------------------
// libxcrypt (bcrypt, $5$, $6$).

// crypt_rn into a per-call crypt_data (about 32 KB, so on the heap). Empty result on failure.
std::string xcrypt(std::string_view password, std::string_view setting) {
  // crypt takes C strings: an embedded NUL would silently truncate, so refuse.
  if (has_nul(password) || has_nul(setting)) return {};
  std::string pw(password);
  std::string st(setting);
  auto data = std::make_unique<crypt_data>();  // value-initialized (zeroed)
  std::string out;
  const char* r = crypt_rn(pw.c_str(), st.c_str(), data.get(), static_cast<int>(sizeof *data));
  // crypt_rn returns NULL on failure; guard against the "*0"/"*1" failure tokens anyway.
  if (r != nullptr && r[0] != '*') out = r;
  OPENSSL_cleanse(data.get(), sizeof *data);
  OPENSSL_cleanse(pw.data(), pw.size());
  return out;
}

bool verify_xcrypt(std::string_view password, std::string_view hash) noexcept {
  try {
    std::string computed = xcrypt(password, hash);
    if (computed.empty()) return false;
    return ct_equal(computed, hash);
  } catch (...) {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// $apr1$: Apache's MD5-crypt (the FreeBSD md5crypt algorithm with magic "$apr1$").

// Salt of an $apr1$ hash: up to 8 characters after the magic, ending at '$' or the end.
std::string_view apr1_salt(std::string_view hash) noexcept {
  std::string_view rest = hash.substr(kApr1.size());
  size_t end = rest.find('$');
  if (end == std::string_view::npos) end = rest.size();
  if (end > kApr1MaxSalt) end = kApr1MaxSalt;
  return rest.substr(0, end);
}

// Computes "$apr1$<salt>$<22 chars>". Returns false on OpenSSL failure.
bool apr1_crypt(std::string_view pw, std::string_view salt, std::string* out) noexcept {
  try {
    MdPtr md(EVP_MD_fetch(nullptr, "MD5", nullptr));
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!md || !ctx) return false;
    EVP_MD_CTX* c = ctx.get();
    EVP_MD* m = md.get();
    unsigned char fin[kMd5Len];
    unsigned int len = 0;
    bool ok = true;
    auto init = [&] { ok = ok && EVP_DigestInit_ex2(c, m, nullptr) == 1; };
    auto upd = [&](const void* p, size_t n) { ok = ok && EVP_DigestUpdate(c, p, n) == 1; };
    auto finish = [&] { ok = ok && EVP_DigestFinal_ex(c, fin, &len) == 1 && len == kMd5Len; };

    // Alternate sum: MD5(pw || salt || pw).
    init();
    upd(pw.data(), pw.size());
    upd(salt.data(), salt.size());
    upd(pw.data(), pw.size());
    finish();
    if (!ok) return false;

    // Main sum: pw || magic || salt || alternate bytes || a bit-driven mix.
    unsigned char alt[kMd5Len];
    std::memcpy(alt, fin, sizeof alt);
    init();
    upd(pw.data(), pw.size());
    upd(kApr1.data(), kApr1.size());
    upd(salt.data(), salt.size());
    for (size_t left = pw.size(); left > 0; left -= (left > kMd5Len ? kMd5Len : left)) {
      upd(alt, left > kMd5Len ? kMd5Len : left);
    }
    const unsigned char zero = 0;
    for (size_t i = pw.size(); i != 0; i >>= 1) {
      if (i & 1) {
        upd(&zero, 1);
      } else {
        upd(pw.data(), 1);
      }
    }
    finish();
    OPENSSL_cleanse(alt, sizeof alt);

    // 1000 rounds of stretching.
    for (int i = 0; i < 1000 && ok; i++) {
      init();
      if (i & 1) {
        upd(pw.data(), pw.size());
      } else {
        upd(fin, kMd5Len);
      }
      if (i % 3) upd(salt.data(), salt.size());
      if (i % 7) upd(pw.data(), pw.size());
      if (i & 1) {
        upd(fin, kMd5Len);
      } else {
        upd(pw.data(), pw.size());
      }
      finish();
    }
    if (!ok) return false;

    out->assign(kApr1);
    out->append(salt);
    out->push_back('$');
    auto to64 = [out](uint32_t v, int n) {
      for (; n > 0; n--, v >>= 6) out->push_back(kItoa64[v & 63]);
    };
    auto b = [&fin](int i) { return uint32_t{fin[i]}; };
    to64((b(0) << 16) | (b(6) << 8) | b(12), 4);
    to64((b(1) << 16) | (b(7) << 8) | b(13), 4);
    to64((b(2) << 16) | (b(8) << 8) | b(14), 4);
    to64((b(3) << 16) | (b(9) << 8) | b(15), 4);
    to64((b(4) << 16) | (b(10) << 8) | b(5), 4);
    to64(b(11), 2);
    OPENSSL_cleanse(fin, sizeof fin);
    return true;
  } catch (...) {
    return false;
  }
}

bool verify_apr1(std::string_view password, std::string_view hash) noexcept {
  std::string computed;
  if (!apr1_crypt(password, apr1_salt(hash), &computed)) return false;
  return ct_equal(computed, hash);
}

// ---------------------------------------------------------------------------------------------
// {SHA} and {SSHA}.

bool verify_sha(std::string_view password, std::string_view hash) noexcept {
  try {
    unsigned char d[kSha1Len];
    if (!digest2("SHA1", password, {}, d, sizeof d)) return false;
    std::string computed(kSha);
    computed += b64_encode(d, sizeof d);
    return ct_equal(computed, hash);
  } catch (...) {
    return false;
  }
}

bool verify_ssha(std::string_view password, std::string_view hash) noexcept {
  try {
    std::string raw;
    if (!b64_decode(hash.substr(kSsha.size()), &raw)) return false;
    if (raw.size() < kSha1Len) return false;
    std::string_view stored(raw.data(), kSha1Len);
    std::string_view salt(raw.data() + kSha1Len, raw.size() - kSha1Len);
    unsigned char d[kSha1Len];
    if (!digest2("SHA1", password, salt, d, sizeof d)) return false;
    return CRYPTO_memcmp(d, stored.data(), kSha1Len) == 0;
  } catch (...) {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Dummy hashes.

// salt_len is that of the hash being imitated: it changes how many MD5 blocks each round hashes.
std::string dummy_apr1(size_t salt_len) {
  std::string out;
  if (!apr1_crypt(random_password(), random_crypt_salt(salt_len), &out)) {
    throw std::runtime_error("htpasswd: MD5 unavailable");
  }
  return out;
}

std::string dummy_bcrypt(std::string_view like) {
  // Keep the variant ("$2y$", "$2b$", "$2a$") and the cost "NN" when it is a valid 04..31.
  unsigned long cost = 10;
  if (like.size() >= 7 && like[6] == '$' && like[4] >= '0' && like[4] <= '9' && like[5] >= '0' &&
      like[5] <= '9') {
    unsigned long c = static_cast<unsigned long>((like[4] - '0') * 10 + (like[5] - '0'));
    if (c >= 4 && c <= 31) cost = c;
  }
  std::string prefix(like.substr(0, 4));
  unsigned char rbytes[16];
  random_bytes(rbytes, sizeof rbytes);
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  const char* s = crypt_gensalt_rn(prefix.c_str(), cost, reinterpret_cast<const char*>(rbytes),
                                   static_cast<int>(sizeof rbytes), setting,
                                   static_cast<int>(sizeof setting));
  if (s == nullptr || s[0] == '*') throw std::runtime_error("htpasswd: crypt_gensalt failed");
  std::string out = xcrypt(random_password(), s);
  if (out.empty()) throw std::runtime_error("htpasswd: bcrypt failed");
  return out;
}

std::string dummy_shacrypt(std::string_view like, std::string_view magic) {
  // Keep "rounds=N$" verbatim when present (digits only, bounded length) so the cost matches.
  std::string rounds;
  constexpr std::string_view kRounds = "rounds=";
  std::string_view rest = like.substr(magic.size());
  if (starts_with(rest, kRounds)) {
    size_t i = kRounds.size();
    while (i < rest.size() && i < kRounds.size() + 10 && rest[i] >= '0' && rest[i] <= '9') i++;
    if (i > kRounds.size() && i < rest.size() && rest[i] == '$') {
      rounds = std::string(rest.substr(0, i + 1));
    }
  }
  // Keep the salt length too (1..16; crypt uses at most 16): it changes the number of SHA blocks
  // per round, measurably ($5$ with a 3-char salt is about a third faster than with 16).
  std::string_view salt = rest.substr(rounds.size());
  size_t salt_len = salt.find('$');
  if (salt_len == std::string_view::npos) salt_len = salt.size();
  if (salt_len == 0 || salt_len > kShaCryptSaltLen) salt_len = kShaCryptSaltLen;
  const std::string pw = random_password();
  std::string out = xcrypt(pw, std::string(magic) + rounds + random_crypt_salt(salt_len));
  if (out.empty() && !rounds.empty()) {
    // libxcrypt rejects out-of-range rounds; then the real hash fails fast too, use the default.
    out = xcrypt(pw, std::string(magic) + random_crypt_salt(salt_len));
  }
  if (out.empty()) throw std::runtime_error("htpasswd: SHA-crypt failed");
  return out;
}

std::string dummy_sha() {
  unsigned char d[kSha1Len];
  if (!digest2("SHA1", random_password(), {}, d, sizeof d)) {
    throw std::runtime_error("htpasswd: SHA1 unavailable");
  }
  return std::string(kSha) + b64_encode(d, sizeof d);
}

std::string dummy_ssha(std::string_view like) {
  // Same salt length as `like` when it decodes (bounded), else 8 bytes.
  size_t salt_len = kSshaDummySalt;
  std::string raw;
  if (b64_decode(like.substr(kSsha.size()), &raw) && raw.size() >= kSha1Len &&
      raw.size() - kSha1Len <= kSshaMaxSalt) {
    salt_len = raw.size() - kSha1Len;
  }
  unsigned char buf[kSha1Len + kSshaMaxSalt];
  random_bytes(buf + kSha1Len, salt_len);
  std::string_view salt(reinterpret_cast<const char*>(buf + kSha1Len), salt_len);
  if (!digest2("SHA1", random_password(), salt, buf, kSha1Len)) {
    throw std::runtime_error("htpasswd: SHA1 unavailable");
  }
  return std::string(kSsha) + b64_encode(buf, kSha1Len + salt_len);
}

}  // namespace

HashKind htpasswd_hash_kind(std::string_view hash) noexcept {
  if (starts_with(hash, kBcrypt2y) || starts_with(hash, kBcrypt2b) ||
      starts_with(hash, kBcrypt2a)) {
    return HashKind::Bcrypt;
  }
  if (starts_with(hash, kApr1)) return HashKind::Apr1;
  if (starts_with(hash, kSha)) return HashKind::Sha1;
  if (starts_with(hash, kSsha)) return HashKind::Ssha;
  if (starts_with(hash, kSha256)) return HashKind::Sha256Crypt;
  if (starts_with(hash, kSha512)) return HashKind::Sha512Crypt;
  return HashKind::Unknown;
}

bool htpasswd_parse_line(std::string_view line, std::string_view* user,
                         std::string_view* hash) noexcept {
  // The line ends at the first CR or LF (covers LF, CRLF and bare-CR line endings).
  size_t eol = line.find_first_of("\r\n");
  if (eol != std::string_view::npos) line = line.substr(0, eol);
  if (line.empty() || line[0] == '#') return false;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = line.substr(colon + 1);
  size_t colon2 = h.find(':');
  if (colon2 != std::string_view::npos) h = h.substr(0, colon2);
  if (user) *user = line.substr(0, colon);
  if (hash) *hash = h;
  return true;
}

bool htpasswd_find(std::string_view file, std::string_view user, std::string_view* hash) noexcept {
  if (user.empty()) return false;
  size_t pos = 0;
  while (pos <= file.size()) {
    // Lines are split on LF and on CR, so CRLF files yield harmless empty lines in between.
    size_t eol = file.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = file.size();
    std::string_view u;
    std::string_view h;
    if (htpasswd_parse_line(file.substr(pos, eol - pos), &u, &h) && u == user) {
      if (hash) *hash = h;
      return true;
    }
    pos = eol + 1;
  }
  return false;
}

bool htpasswd_verify(std::string_view password, std::string_view hash) noexcept {
  // libxcrypt refuses passphrases of CRYPT_MAX_PASSPHRASE_SIZE (512) bytes or more; apply the
  // same limit to every format so the cost of one attempt stays bounded ($apr1$ hashes about
  // 3000 times the password length: a 1 MB password would cost seconds of CPU).
  if (password.size() >= CRYPT_MAX_PASSPHRASE_SIZE) return false;
  switch (htpasswd_hash_kind(hash)) {
    case HashKind::Bcrypt:
    case HashKind::Sha256Crypt:
    case HashKind::Sha512Crypt:
      return verify_xcrypt(password, hash);
    case HashKind::Apr1:
      return verify_apr1(password, hash);
    case HashKind::Sha1:
      return verify_sha(password, hash);
    case HashKind::Ssha:
      return verify_ssha(password, hash);
    case HashKind::Unknown:
      break;
  }
  return false;
}

// Throws std::runtime_error if the system RNG or a required digest is unavailable.
std::string htpasswd_dummy_hash(std::string_view like) {
  switch (htpasswd_hash_kind(like)) {
    case HashKind::Bcrypt:
      return dummy_bcrypt(like);
    case HashKind::Sha256Crypt:
      return dummy_shacrypt(like, kSha256);
    case HashKind::Sha512Crypt:
      return dummy_shacrypt(like, kSha512);
    case HashKind::Apr1:
      return dummy_apr1(apr1_salt(like).size());
    case HashKind::Sha1:
      return dummy_sha();
    case HashKind::Ssha:
      return dummy_ssha(like);
    case HashKind::Unknown:
      break;
  }
  // Unknown (also empty, plain text, DES crypt): a real hash of an unknown format fails at once
  // without hashing, so there is no cost to match. We still return a valid $apr1$ hash rather
  // than an unknown string so that callers always get something that does real, modest work
  // (about a millisecond) and that the header's "syntactically valid" promise holds; bcrypt was
  // rejected because a cost guess could make a login against a broken file needlessly slow.
  return dummy_apr1(kApr1MaxSalt);
}

}  // namespace sess

// The user table and the constant-cost password check (see users.h).
#include "users.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <stdexcept>

namespace sess {

namespace {

constexpr size_t kDecoyKeyLen = 32;
constexpr uint32_t kShaCryptDefaultRounds = 5000;
constexpr uint32_t kShaCryptMinRounds = 1000;        // libxcrypt refuses fewer
constexpr uint32_t kShaCryptMaxRounds = 999999999;   // and more
constexpr uint32_t kBcryptMinCost = 4;
constexpr uint32_t kBcryptMaxCost = 31;

// The bcrypt dummy for an empty file: made once per process (a cost-10 hash takes tens of
// milliseconds), immutable afterwards; no password is known for it.
const std::string& empty_file_dummy() {
  static const std::string dummy = htpasswd_dummy_hash("$2y$10$");
  return dummy;
}

// bcrypt "$2y$NN$...": NN when it is a cost crypt accepts, else 0 (the check fails at once).
uint32_t bcrypt_cost(std::string_view h) noexcept {
  if (h.size() < 7 || h[6] != '$' || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9') {
    return 0;
  }
  const auto cost = static_cast<uint32_t>((h[4] - '0') * 10 + (h[5] - '0'));
  return cost >= kBcryptMinCost && cost <= kBcryptMaxCost ? cost : 0;
}

// sha-crypt "$5$[rounds=N$]salt$...": N, or 5000 without "rounds=", or 0 when crypt refuses
// the rounds (out of range, leading zero, not digits: the check then fails at once).
uint32_t shacrypt_rounds(std::string_view h) noexcept {
  constexpr std::string_view kRounds = "rounds=";
  const std::string_view rest = h.substr(3);  // after "$5$" / "$6$"
  if (rest.substr(0, kRounds.size()) != kRounds) return kShaCryptDefaultRounds;
  uint64_t n = 0;
  size_t i = kRounds.size();
  for (; i < rest.size() && i < kRounds.size() + 10 && rest[i] >= '0' && rest[i] <= '9'; i++) {
    n = n * 10 + static_cast<uint64_t>(rest[i] - '0');
  }
  const size_t digits = i - kRounds.size();
  if (digits == 0 || rest[kRounds.size()] == '0' || i >= rest.size() || rest[i] != '$' ||
      n < kShaCryptMinRounds || n > kShaCryptMaxRounds) {
    return 0;
  }
  return static_cast<uint32_t>(n);
}

bool class_less(const CostClass& a, const CostClass& b) noexcept {
  return a.kind != b.kind ? a.kind < b.kind : a.cost < b.cost;
}

}  // namespace

CostClass cost_class_of(std::string_view hash) noexcept {
  CostClass c;
  c.kind = htpasswd_hash_kind(hash);
  switch (c.kind) {
    case HashKind::Bcrypt:
      c.cost = bcrypt_cost(hash);
      break;
    case HashKind::Sha256Crypt:
    case HashKind::Sha512Crypt:
      c.cost = shacrypt_rounds(hash);
      break;
    case HashKind::Apr1:
    case HashKind::Sha1:
    case HashKind::Ssha:
    case HashKind::Unknown:
      break;
  }
  return c;
}

void UserTable::load(std::string_view file) {
  index_.clear();
  hashes_.clear();
  classes_.clear();
  dummy_.clear();

  const size_t lines = static_cast<size_t>(std::count(file.begin(), file.end(), '\n')) + 1;
  index_.reserve(std::min(lines, kMaxUsers));
  hashes_.reserve(std::min(lines, kMaxUsers));

  // The lines of htpasswd_find: split on LF and on CR, first occurrence of a user wins.
  size_t pos = 0;
  while (pos <= file.size() && hashes_.size() < kMaxUsers) {
    size_t eol = file.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = file.size();
    std::string_view user;
    std::string_view hash;
    if (htpasswd_parse_line(file.substr(pos, eol - pos), &user, &hash) &&
        index_.emplace(std::string(user), hashes_.size()).second) {
      hashes_.emplace_back(hash);
    }
    pos = eol + 1;
  }

  std::vector<CostClass> all;
  all.reserve(hashes_.size());
  decoys_.clear();
  for (size_t i = 0; i < hashes_.size(); i++) {
    // Hashes no password can match (locked accounts, unknown formats) cost nothing to check:
    // never a decoy, and checked as a decoy (so not a cost class of their own).
    if (htpasswd_hash_kind(hashes_[i]) == HashKind::Unknown) continue;
    all.push_back(cost_class_of(hashes_[i]));
    decoys_.push_back(i);
  }
  std::sort(all.begin(), all.end(), class_less);
  classes_.assign(all.begin(), std::unique(all.begin(), all.end()));

  if (decoys_.empty()) dummy_ = empty_file_dummy();
}

const std::string* UserTable::find(std::string_view user) const noexcept {
  try {
    const auto it = index_.find(std::string(user));
    return it == index_.end() ? nullptr : &hashes_[it->second];
  } catch (...) {
    return nullptr;  // std::string could not allocate: an unknown user, checked against a decoy
  }
}

const std::string& UserTable::decoy(std::string_view user, const unsigned char* key) const {
  if (decoys_.empty()) return dummy_;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key, static_cast<int>(kDecoyKeyLen),
           reinterpret_cast<const unsigned char*>(user.data()), user.size(), mac, &len) ==
          nullptr ||
      len < 8) {
    throw std::runtime_error("users: HMAC-SHA256 failed");
  }
  // 64 bits modulo at most kMaxUsers: the bias is below 2^-40.
  return hashes_[decoys_[get_be64(mac) % decoys_.size()]];
}

CheckResult users_check(const UserTable& t, std::string_view user, std::string_view password,
                        const unsigned char* decoy_key, const std::string** verified) {
  // The decoy is picked for known users too, so both paths do the same work before hashing.
  const std::string& decoy = t.decoy(user, decoy_key);
  const std::string* hash = t.find(user);
  // A known user whose hash no password can match (a locked account, "!", or a format this
  // module does not know) would fail at once and so reveal that the name exists: it costs the
  // decoy's verification instead, like an unknown user.
  if (hash != nullptr && htpasswd_hash_kind(*hash) != HashKind::Unknown) {
    if (verified != nullptr) *verified = hash;
    return htpasswd_verify(password, *hash) ? CheckResult::Match : CheckResult::NoMatch;
  }
  if (verified != nullptr) *verified = &decoy;
  (void)htpasswd_verify(password, decoy);
  return CheckResult::NoMatch;
}

}  // namespace sess

// The user table of session_login_user_file, built once per version of the file, and the
// password check that costs the same for known and unknown users.
//
// Lookup is a hash-table probe, so where a user sits in the file does not change the time. A
// known user's password is verified against its hash. An unknown user's password is verified
// against a decoy: the hash of one of the file's users, picked by HMAC-SHA256(decoy_key, name)
// modulo the number of users - stable for a given name, and spread over the file's hashes in
// proportion, so an unknown name costs what a known user of the file costs. Where the file
// mixes hash formats or costs (bcrypt 10 and $apr1$, say), the time still tells the format of
// the hash that was checked - for a known user that is its own, for an unknown one a random
// user's - so a name cannot be told apart by a single format's cost, but README says that mixed
// files leak which format a given known user has. An empty file uses a bcrypt (cost 10) dummy
// made by load().
//
// A UserTable is immutable after load(): safe to share between the threads of the pool.
#pragma once

#include "common.h"
#include "htpasswd.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace sess {

// A cost class: the hash kind plus its cost parameter: the bcrypt cost ("$2y$NN$", 4..31), the
// sha-crypt rounds ("rounds=N$", 5000 without it); 0 for $apr1$, {SHA}, {SSHA}, unknown formats,
// and for a cost that crypt refuses (such a hash fails at once, without hashing).
struct CostClass {
  HashKind kind = HashKind::Unknown;
  uint32_t cost = 0;
  bool operator==(const CostClass& o) const noexcept { return kind == o.kind && cost == o.cost; }
};

CostClass cost_class_of(std::string_view hash) noexcept;

class UserTable {
 public:
  static constexpr size_t kMaxUsers = 1000000;

  // Parses an htpasswd file (htpasswd_parse_line rules, lines split as htpasswd_find does; first
  // occurrence of a user wins; at most kMaxUsers users, later ones are ignored). Replaces the
  // contents. Throws std::bad_alloc, or std::runtime_error if the empty-file dummy cannot be
  // made (the bcrypt dummy is made once per process and shared by empty tables).
  void load(std::string_view file);

  size_t size() const noexcept { return hashes_.size(); }

  // The hash of user, or nullptr.
  const std::string* find(std::string_view user) const noexcept;

  // The decoy hash for an unknown user (see above). key: 32 bytes. Throws std::runtime_error if
  // the HMAC fails.
  const std::string& decoy(std::string_view user, const unsigned char* key) const;

  // Number of distinct cost classes among the users (more than 1: the file mixes formats), and
  // the classes, ordered by kind and then cost.
  size_t cost_classes() const noexcept { return classes_.size(); }
  const std::vector<CostClass>& classes() const noexcept { return classes_; }

 private:
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::string> hashes_;
  std::vector<CostClass> classes_;
  std::vector<size_t> decoys_;  // users whose hash can be verified (the decoy candidates)
  std::string dummy_;  // for a table without such users, made by load()
};

enum class CheckResult : uint8_t { Match, NoMatch };

// Verifies password for user: against the user's hash if known, else against the decoy (and
// then always NoMatch). Exactly one hash verification runs either way; *verified (if given) is
// set to the hash it ran against (tests check the work done without timing it). Throws as
// decoy() does.
CheckResult users_check(const UserTable& t, std::string_view user, std::string_view password,
                        const unsigned char* decoy_key, const std::string** verified = nullptr);

}  // namespace sess

// Unit tests for users.h: the user table, cost classes, decoys and the constant-cost check.
//
// Hashes with known passwords are made here with libcrypt and OpenSSL directly, not with the
// code under test; bcrypt costs stay at 4-6 so that the suite is fast.
#include "users.h"

#include <crypt.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

using sess::CheckResult;
using sess::CostClass;
using sess::HashKind;
using sess::UserTable;

namespace {

const unsigned char kKey[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const unsigned char kOtherKey[32] = {42};

// {SHA}: base64(SHA1(password)).
std::string sha_hash(const std::string& pw) {
  unsigned char d[20];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(pw.data(), pw.size(), d, &len, EVP_sha1(), nullptr), 1);
  unsigned char b[32];
  const int n = EVP_EncodeBlock(b, d, sizeof d);
  return "{SHA}" + std::string(reinterpret_cast<char*>(b), static_cast<size_t>(n));
}

// bcrypt through libcrypt with a fixed salt (the salt does not matter here).
std::string bcrypt_hash(const std::string& pw, unsigned long cost) {
  const char rnd[16] = {'s', 'a', 'l', 't', 's', 'a', 'l', 't', 's', 'a', 'l', 't', 's', 'a', 'l', 't'};
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2y$", cost, rnd, sizeof rnd, setting, sizeof setting), nullptr);
  struct crypt_data data = {};
  const char* r = crypt_rn(pw.c_str(), setting, &data, sizeof data);
  EXPECT_TRUE(r != nullptr && r[0] == '$');
  return r ? r : "";
}

// Reference decoy index: HMAC-SHA256(key, user), first 8 bytes big-endian, modulo n.
size_t ref_decoy_index(std::string_view user, const unsigned char* key, size_t n) {
  unsigned char mac[32];
  size_t len = 0;
  EXPECT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key, 32,
                      reinterpret_cast<const unsigned char*>(user.data()), user.size(), mac,
                      sizeof mac, &len),
            nullptr);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | mac[i];
  return static_cast<size_t>(v % n);
}

UserTable load(const std::string& file) {
  UserTable t;
  t.load(file);
  return t;
}

std::string found(const UserTable& t, std::string_view user) {
  const std::string* h = t.find(user);
  return h ? *h : "(absent)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// cost_class_of

TEST(CostClassOf, Table) {
  const struct {
    const char* hash;
    HashKind kind;
    uint32_t cost;
  } cases[] = {
      {"$2y$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234", HashKind::Bcrypt, 10},
      {"$2b$04$abcdefghijklmnopqrstuu", HashKind::Bcrypt, 4},
      {"$2a$31$", HashKind::Bcrypt, 31},
      {"$2y$05$", HashKind::Bcrypt, 5},
      {"$2y$03$x", HashKind::Bcrypt, 0},   // crypt refuses: fails at once
      {"$2y$32$x", HashKind::Bcrypt, 0},
      {"$2y$5$x", HashKind::Bcrypt, 0},
      {"$2y$1x$x", HashKind::Bcrypt, 0},
      {"$2y$10", HashKind::Bcrypt, 0},
      {"$2y$", HashKind::Bcrypt, 0},
      {"$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0", HashKind::Sha256Crypt, 5000},
      {"$6$abcdefgh$x", HashKind::Sha512Crypt, 5000},
      {"$5$rounds=10000$saltstringsaltst$x", HashKind::Sha256Crypt, 10000},
      {"$6$rounds=1000$s$x", HashKind::Sha512Crypt, 1000},
      {"$6$rounds=999999999$s$x", HashKind::Sha512Crypt, 999999999},
      {"$6$rounds=999$s$x", HashKind::Sha512Crypt, 0},         // below libxcrypt's minimum
      {"$6$rounds=1000000000$s$x", HashKind::Sha512Crypt, 0},  // above its maximum
      {"$6$rounds=99999999999999999999$s$x", HashKind::Sha512Crypt, 0},
      {"$5$rounds=05000$s$x", HashKind::Sha256Crypt, 0},       // leading zero: refused
      {"$5$rounds=$s$x", HashKind::Sha256Crypt, 0},
      {"$5$rounds=x$s$x", HashKind::Sha256Crypt, 0},
      {"$5$rounds=5000", HashKind::Sha256Crypt, 0},
      {"$5$", HashKind::Sha256Crypt, 5000},
      {"$apr1$QkuL/z91$ZgH/eDgnsjvqSTdrB9iOe.", HashKind::Apr1, 0},
      {"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", HashKind::Sha1, 0},
      {"{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA==", HashKind::Ssha, 0},
      {"plaintext", HashKind::Unknown, 0},
      {"", HashKind::Unknown, 0},
      {"$1$abc$def", HashKind::Unknown, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.hash);
    const CostClass got = sess::cost_class_of(c.hash);
    EXPECT_EQ(got.kind, c.kind);
    EXPECT_EQ(got.cost, c.cost);
  }
}

// The rounds that cost_class_of reads are the ones crypt uses: a real $5$ hash with rounds=1000
// verifies, and its class says 1000.
TEST(CostClassOf, AgreesWithCrypt) {
  struct crypt_data data = {};
  const char* r = crypt_rn("pw", "$5$rounds=1000$abc", &data, sizeof data);
  ASSERT_TRUE(r != nullptr && r[0] == '$');
  const std::string h = r;
  EXPECT_EQ(sess::cost_class_of(h), (CostClass{HashKind::Sha256Crypt, 1000}));
  EXPECT_TRUE(sess::htpasswd_verify("pw", h));
  const std::string b = bcrypt_hash("pw", 5);
  EXPECT_EQ(sess::cost_class_of(b), (CostClass{HashKind::Bcrypt, 5}));
}

// ---------------------------------------------------------------------------------------------
// UserTable::load / find

TEST(UserTable, ParsesLikeHtpasswdFind) {
  const std::string file =
      "# comment\n"
      "\n"
      "alice:{SHA}a\r\n"
      "bob:$apr1$x$y:extra field\n"
      ":nouser\n"
      "no colon here\n"
      "  carol:{SHA}c\n"
      "alice:{SHA}second\n"
      "dave:\r"
      "erin:{SHA}e";  // no final newline
  const UserTable t = load(file);
  const std::pair<const char*, const char*> cases[] = {
      {"alice", "{SHA}a"},           // first occurrence wins
      {"bob", "$apr1$x$y"},          // fields after a second ':' ignored
      {"  carol", "{SHA}c"},         // no trimming, as htpasswd_find
      {"dave", ""},                  // an empty hash is a user that never matches
      {"erin", "{SHA}e"},
      {"carol", "(absent)"},
      {"Alice", "(absent)"},         // case-sensitive
      {"", "(absent)"},
      {"# comment", "(absent)"},
      {"no colon here", "(absent)"},
      {"alice:{SHA}a", "(absent)"},
  };
  for (const auto& [user, hash] : cases) {
    SCOPED_TRACE(user);
    EXPECT_EQ(found(t, user), hash);
    std::string_view ref;
    if (sess::htpasswd_find(file, user, &ref)) {
      EXPECT_EQ(found(t, user), ref);
    } else {
      EXPECT_EQ(found(t, user), "(absent)");
    }
  }
  EXPECT_EQ(t.size(), 5u);
}

TEST(UserTable, LookupIndependentOfPosition) {
  std::string file;
  for (int i = 0; i < 2000; i++) {
    file += "user" + std::to_string(i) + ":{SHA}h" + std::to_string(i) + "\n";
  }
  const UserTable t = load(file);
  ASSERT_EQ(t.size(), 2000u);
  for (int i : {0, 1, 999, 1998, 1999}) {
    EXPECT_EQ(found(t, "user" + std::to_string(i)), "{SHA}h" + std::to_string(i));
  }
  for (int i = 0; i < 2000; i++) {
    ASSERT_NE(t.find("user" + std::to_string(i)), nullptr) << i;
  }
  EXPECT_EQ(t.find("user2000"), nullptr);
  EXPECT_EQ(t.find("user"), nullptr);
}

TEST(UserTable, ReloadReplacesContents) {
  UserTable t;
  t.load("alice:{SHA}a\nbob:{SHA}b\n");
  ASSERT_EQ(t.size(), 2u);
  t.load("carol:$2y$05$x\n");
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find("alice"), nullptr);
  EXPECT_EQ(found(t, "carol"), "$2y$05$x");
  EXPECT_EQ(t.classes(), (std::vector<CostClass>{{HashKind::Bcrypt, 5}}));
}

TEST(UserTable, AtMostMaxUsers) {
  std::string file;
  file.reserve((UserTable::kMaxUsers + 2) * 12);
  for (size_t i = 0; i < UserTable::kMaxUsers + 2; i++) {
    file += "u" + std::to_string(i) + ":{SHA}\n";
  }
  const UserTable t = load(file);
  EXPECT_EQ(t.size(), UserTable::kMaxUsers);
  EXPECT_NE(t.find("u" + std::to_string(UserTable::kMaxUsers - 1)), nullptr);
  EXPECT_EQ(t.find("u" + std::to_string(UserTable::kMaxUsers)), nullptr);
}

TEST(UserTable, CostClassesOfMixedFiles) {
  const std::string b4 = bcrypt_hash("a", 4);
  const std::string b5 = bcrypt_hash("b", 5);
  const struct {
    const char* what;
    std::string file;
    std::vector<CostClass> classes;
  } cases[] = {
      {"empty", "", {}},
      {"one bcrypt cost", "a:" + b4 + "\nb:" + bcrypt_hash("x", 4) + "\n", {{HashKind::Bcrypt, 4}}},
      {"two bcrypt costs", "a:" + b5 + "\nb:" + b4 + "\n",
       {{HashKind::Bcrypt, 4}, {HashKind::Bcrypt, 5}}},
      {"bcrypt and apr1", "a:" + b5 + "\nb:$apr1$QkuL/z91$ZgH/eDgnsjvqSTdrB9iOe.\n",
       {{HashKind::Bcrypt, 5}, {HashKind::Apr1, 0}}},
      {"everything",
       "a:" + b4 + "\nb:$apr1$s$h\nc:{SHA}x\nd:{SSHA}y\ne:$5$s$h\nf:$6$rounds=10000$s$h\n"
       "g:$6$s$h\nh:plain\ni:" + b4 + "\nj:{SHA}z\n",
       {{HashKind::Bcrypt, 4},
        {HashKind::Apr1, 0},
        {HashKind::Sha1, 0},
        {HashKind::Ssha, 0},
        {HashKind::Sha256Crypt, 5000},
        {HashKind::Sha512Crypt, 5000},
        {HashKind::Sha512Crypt, 10000}}},   // "plain" can never match: checked as a decoy
      {"a duplicate's hash does not count", "a:{SHA}x\na:" + b4 + "\n", {{HashKind::Sha1, 0}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const UserTable t = load(c.file);
    EXPECT_EQ(t.classes(), c.classes);
    EXPECT_EQ(t.cost_classes(), c.classes.size());
  }
}

// ---------------------------------------------------------------------------------------------
// UserTable::decoy

TEST(UserTableDecoy, StableAndFromTheFile) {
  std::string file;
  std::set<std::string> hashes;
  for (int i = 0; i < 7; i++) {
    const std::string h = "{SHA}hash" + std::to_string(i);
    file += "user" + std::to_string(i) + ":" + h + "\n";
    hashes.insert(h);
  }
  const UserTable t = load(file);
  const UserTable again = load(file);
  for (const char* name : {"mallory", "", "x", "admin", "user7", "a:b", "\xff\xfe"}) {
    SCOPED_TRACE(name);
    const std::string& d = t.decoy(name, kKey);
    EXPECT_EQ(hashes.count(d), 1u);                    // one of the file's hashes
    EXPECT_EQ(&t.decoy(name, kKey), &d);               // stable, no copy
    EXPECT_EQ(again.decoy(name, kKey), d);             // the same for the same file
    EXPECT_EQ(d, "{SHA}hash" + std::to_string(ref_decoy_index(name, kKey, 7)));
  }
  // Another key picks otherwise for some name.
  bool differs = false;
  for (int i = 0; i < 50 && !differs; i++) {
    const std::string n = "name" + std::to_string(i);
    differs = t.decoy(n, kKey) != t.decoy(n, kOtherKey);
  }
  EXPECT_TRUE(differs);
}

TEST(UserTableDecoy, ProportionalOverManyNames) {
  // 4 users, 3 of them bcrypt: about 3/4 of unknown names must land on a bcrypt hash, and each
  // user gets about a quarter.
  const std::string file = "a:$2y$05$a\nb:$2y$05$b\nc:$2y$05$c\nd:{SHA}d\n";
  const UserTable t = load(file);
  constexpr int kNames = 20000;
  std::map<std::string, int> count;
  for (int i = 0; i < kNames; i++) count[t.decoy("unknown-" + std::to_string(i), kKey)]++;
  ASSERT_EQ(count.size(), 4u);
  for (const auto& [hash, n] : count) {
    SCOPED_TRACE(hash);
    // Expected 5000, standard deviation about 61: 10% is more than 8 deviations.
    EXPECT_GT(n, kNames / 4 * 9 / 10);
    EXPECT_LT(n, kNames / 4 * 11 / 10);
  }
}

TEST(UserTableDecoy, EmptyFileUsesBcryptCost10Dummy) {
  for (const char* file : {"", "# only a comment\n", "\n\n", "nocolon\n", ":x\n"}) {
    SCOPED_TRACE(file);
    const UserTable t = load(file);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.cost_classes(), 0u);
    const std::string& d = t.decoy("anyone", kKey);
    EXPECT_EQ(sess::cost_class_of(d), (CostClass{HashKind::Bcrypt, 10}));
    EXPECT_EQ(d.substr(0, 7), "$2y$10$");
    EXPECT_EQ(d.size(), 60u);
    EXPECT_EQ(&t.decoy("someone else", kKey), &d);
  }
}

// ---------------------------------------------------------------------------------------------
// users_check

TEST(UsersCheck, Table) {
  const std::string file = "alice:" + bcrypt_hash("alice-pw", 4) + "\n" +
                           "bob:" + sha_hash("bob-pw") + "\n" +
                           "carol:$apr1$QkuL/z91$ZgH/eDgnsjvqSTdrB9iOe.\n" +  // "secret"
                           "dave:\n";
  const UserTable t = load(file);
  const struct {
    const char* user;
    const char* password;
    CheckResult want;
  } cases[] = {
      {"alice", "alice-pw", CheckResult::Match},
      {"bob", "bob-pw", CheckResult::Match},
      {"carol", "secret", CheckResult::Match},
      {"alice", "bob-pw", CheckResult::NoMatch},
      {"alice", "", CheckResult::NoMatch},
      {"alice", "alice-pw ", CheckResult::NoMatch},
      {"bob", "alice-pw", CheckResult::NoMatch},
      {"Bob", "bob-pw", CheckResult::NoMatch},
      {"dave", "", CheckResult::NoMatch},
      {"mallory", "alice-pw", CheckResult::NoMatch},
      {"mallory", "bob-pw", CheckResult::NoMatch},
      {"mallory", "secret", CheckResult::NoMatch},
      {"", "bob-pw", CheckResult::NoMatch},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.user) + " / " + c.password);
    EXPECT_EQ(sess::users_check(t, c.user, c.password, kKey), c.want);
  }
}

TEST(UsersCheck, UnknownUserWithTheDecoysPasswordDoesNotMatch) {
  // With one user, every unknown name's decoy is bob's hash: bob's password must still fail.
  const UserTable t = load("bob:" + sha_hash("bob-pw") + "\n");
  ASSERT_EQ(t.decoy("mallory", kKey), *t.find("bob"));
  EXPECT_EQ(sess::users_check(t, "bob", "bob-pw", kKey), CheckResult::Match);
  for (const char* name : {"mallory", "bob ", "bo", "bobb", ""}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(sess::users_check(t, name, "bob-pw", kKey), CheckResult::NoMatch);
  }
  // The same over a larger file: for each unknown name, the password of its decoy's owner.
  std::string file;
  std::map<std::string, std::string> password_of_hash;
  for (int i = 0; i < 5; i++) {
    const std::string pw = "pw" + std::to_string(i);
    const std::string h = sha_hash(pw);
    file += "u" + std::to_string(i) + ":" + h + "\n";
    password_of_hash[h] = pw;
  }
  const UserTable big = load(file);
  for (int i = 0; i < 20; i++) {
    const std::string name = "stranger" + std::to_string(i);
    const std::string& pw = password_of_hash.at(big.decoy(name, kKey));
    EXPECT_EQ(sess::users_check(big, name, pw, kKey), CheckResult::NoMatch) << name;
  }
}

TEST(UsersCheck, EmptyFileNeverMatches) {
  const UserTable t = load("");
  EXPECT_EQ(sess::users_check(t, "anyone", "", kKey), CheckResult::NoMatch);
  EXPECT_EQ(sess::users_check(t, "", "password", kKey), CheckResult::NoMatch);
}

// An unknown user pays for a hash verification: the one check runs against a hash of the file
// (a user's bcrypt of the same cost as a known user's), not against nothing. Checked by which
// hash was verified, not by timing it (a loaded machine makes timings flaky); that a bcrypt
// verification runs the full cost is htpasswd's tests' concern.
TEST(UsersCheck, UnknownUserCostsAHashVerification) {
  std::string file;
  std::set<std::string> hashes;
  for (int i = 0; i < 3; i++) {
    const std::string h = bcrypt_hash("pw", 6);
    hashes.insert(h);
    file += "u" + std::to_string(i) + ":" + h + "\n";
  }
  const UserTable t = load(file);
  const std::string* known = nullptr;
  EXPECT_EQ(sess::users_check(t, "u1", "wrong", kKey, &known), CheckResult::NoMatch);
  ASSERT_EQ(known, t.find("u1"));
  std::set<const std::string*> decoys;
  for (int i = 0; i < 40; i++) {
    const std::string name = "nobody" + std::to_string(i);
    const std::string* verified = nullptr;
    EXPECT_EQ(sess::users_check(t, name, "wrong", kKey, &verified), CheckResult::NoMatch);
    ASSERT_NE(verified, nullptr) << name;
    EXPECT_EQ(hashes.count(*verified), 1u) << name;
    EXPECT_EQ(sess::cost_class_of(*verified), sess::cost_class_of(*known)) << name;
    EXPECT_EQ(verified, &t.decoy(name, kKey)) << name;
    decoys.insert(verified);
  }
  EXPECT_EQ(decoys.size(), 3u);  // spread over the file's users
  // The password of the decoy's owner does not let a stranger in (see the test above).
  const std::string* verified = nullptr;
  EXPECT_EQ(sess::users_check(t, "nobody0", "pw", kKey, &verified), CheckResult::NoMatch);
  EXPECT_EQ(hashes.count(*verified), 1u);
}

// A locked account ("!") or a hash of an unknown format fails without hashing its own entry:
// the check runs against the decoy's hash instead (a real bcrypt of the file), so the time does
// not reveal that the name exists.
TEST(UsersCheck, LockedAccountCostsADecoyVerification) {
  std::string file = "locked:!\nodd:$9$weird\n";
  for (int i = 0; i < 3; i++) file += "u" + std::to_string(i) + ":" + bcrypt_hash("pw", 6) + "\n";
  const UserTable t = load(file);
  const std::string* known = nullptr;
  EXPECT_EQ(sess::users_check(t, "u1", "!", kKey, &known), CheckResult::NoMatch);
  ASSERT_EQ(known, t.find("u1"));
  for (const char* user : {"locked", "odd"}) {
    for (const char* pw : {"!", "$9$weird", "pw", ""}) {
      SCOPED_TRACE(std::string(user) + " / " + pw);
      const std::string* verified = nullptr;
      EXPECT_EQ(sess::users_check(t, user, pw, kKey, &verified), CheckResult::NoMatch);
      ASSERT_NE(verified, nullptr);
      EXPECT_NE(verified, t.find(user));
      EXPECT_EQ(verified, &t.decoy(user, kKey));
      EXPECT_EQ(sess::cost_class_of(*verified), sess::cost_class_of(*known));
    }
  }
}

// libFuzzer target: the user table of session_login_user_file (src/core/users.h).
//
// Input: an htpasswd file. No password is ever verified here (bcrypt and SHA-crypt would starve
// the fuzzer); an empty file's bcrypt dummy is made once per process.
// Properties:
//   load/find   - every user that htpasswd_parse_line finds on a line (lines split on CR and LF)
//                 is found, with the hash htpasswd_find gives (first occurrence wins); size()
//                 is the number of distinct users; names next to them (a byte more, a byte less)
//                 are found exactly when htpasswd_find finds them.
//   classes     - ordered, without repeats, and the set of cost_class_of over the users' hashes;
//                 cost_class_of agrees with a reference on the bcrypt cost and sha-crypt rounds.
//   decoy       - one of the table's own hashes (the dummy for an empty table), the same object
//                 on every call for a name.
#include <charconv>
#include <set>
#include <string>
#include <vector>

#include "users.h"

#include "fuzz_check.h"

namespace {

const unsigned char kKey[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

struct ClassLess {
  bool operator()(const sess::CostClass& a, const sess::CostClass& b) const {
    return a.kind != b.kind ? a.kind < b.kind : a.cost < b.cost;
  }
};

// Reference cost: from_chars on the digits instead of a hand-written loop.
uint32_t ref_cost(std::string_view h) {
  switch (sess::htpasswd_hash_kind(h)) {
    case sess::HashKind::Bcrypt: {
      if (h.size() < 7 || h[6] != '$') return 0;
      unsigned v = 0;
      const auto r = std::from_chars(h.data() + 4, h.data() + 6, v);
      if (r.ec != std::errc() || r.ptr != h.data() + 6) return 0;
      return v >= 4 && v <= 31 ? v : 0;
    }
    case sess::HashKind::Sha256Crypt:
    case sess::HashKind::Sha512Crypt: {
      std::string_view rest = h.substr(3);
      if (rest.substr(0, 7) != "rounds=") return 5000;
      rest.remove_prefix(7);
      const size_t dollar = rest.find('$');
      if (dollar == std::string_view::npos || dollar == 0 || dollar > 9 || rest[0] == '0') {
        return 0;  // more than 9 digits is above 999999999
      }
      uint64_t v = 0;
      const auto r = std::from_chars(rest.data(), rest.data() + dollar, v);
      if (r.ec != std::errc() || r.ptr != rest.data() + dollar) return 0;
      return v >= 1000 && v <= 999999999 ? static_cast<uint32_t>(v) : 0;
    }
    default:
      return 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  sess::UserTable t;
  t.load(file);

  std::set<std::string> users;
  std::set<sess::CostClass, ClassLess> classes;
  size_t verifiable = 0;  // users whose hash can be verified
  size_t pos = 0;
  while (pos <= file.size()) {
    size_t eol = file.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = file.size();
    std::string_view user, hash;
    if (sess::htpasswd_parse_line(file.substr(pos, eol - pos), &user, &hash)) {
      std::string_view first;
      FUZZ_CHECK(sess::htpasswd_find(file, user, &first));
      const std::string* got = t.find(user);
      FUZZ_CHECK(got != nullptr && *got == first);
      if (users.insert(std::string(user)).second) {
        const sess::CostClass c = sess::cost_class_of(first);
        FUZZ_CHECK(c.kind == sess::htpasswd_hash_kind(first));
        FUZZ_CHECK(c.cost == ref_cost(first));
        // Hashes no password can match (locked accounts, unknown formats) are checked as a
        // decoy: not a cost class, never a decoy.
        if (c.kind != sess::HashKind::Unknown) {
          classes.insert(c);
          verifiable++;
        }
      }
      // Neighbouring names: found exactly when htpasswd_find finds them.
      const std::string more = std::string(user) + "\x01";
      const std::string less(user.substr(0, user.size() - 1));
      for (const std::string& n : {more, less}) {
        FUZZ_CHECK((t.find(n) != nullptr) == sess::htpasswd_find(file, n, nullptr));
      }
    }
    pos = eol + 1;
  }
  FUZZ_CHECK(t.size() == users.size());
  FUZZ_CHECK(t.find("") == nullptr);

  const std::vector<sess::CostClass>& got = t.classes();
  FUZZ_CHECK(t.cost_classes() == got.size());
  FUZZ_CHECK(std::vector<sess::CostClass>(classes.begin(), classes.end()) == got);

  for (const std::string_view name : {std::string_view("nobody"), std::string_view(),
                                      file.substr(0, 16)}) {
    const std::string& d = t.decoy(name, kKey);
    FUZZ_CHECK(&t.decoy(name, kKey) == &d);
    if (verifiable == 0) {
      FUZZ_CHECK(sess::cost_class_of(d) == (sess::CostClass{sess::HashKind::Bcrypt, 10}));
    } else {
      bool own = false;
      for (const std::string& u : users) own = own || t.find(u) == &d;
      FUZZ_CHECK(own);
      FUZZ_CHECK(sess::htpasswd_hash_kind(d) != sess::HashKind::Unknown);
    }
  }
  return 0;
}

// Unit tests for src/core/htpasswd.{h,cpp}.
//
// Test vectors were generated on Debian 12 with the tools named next to each constant and pasted
// here; they are not produced by the code under test.

#include "htpasswd.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using sess::HashKind;
using sess::htpasswd_dummy_hash;
using sess::htpasswd_find;
using sess::htpasswd_hash_kind;
using sess::htpasswd_parse_line;
using sess::htpasswd_verify;

namespace {

// htpasswd -nbB -C 5 alice secret
const std::string kBcrypt = "$2y$05$4.rmbA4ViMp6VXWCZapt4ubSPEb84CcyzmBvP5XQTZvawNPUUPNoC";
// htpasswd -nbB -C 5 bob ''
const std::string kBcryptEmpty = "$2y$05$0W6Iy0ZgMde8dt2jSc7rK.EhPOnC2HG3GX0Jx2i8cVjutXV76BfVe";
// htpasswd -nbm alice secret
const std::string kApr1 = "$apr1$QkuL/z91$ZgH/eDgnsjvqSTdrB9iOe.";
// htpasswd -nbm bob ''
const std::string kApr1Empty = "$apr1$CcQdmAPJ$uW3f2coW5FqWY3TTFSx9d1";
// openssl passwd -apr1 -salt abc secret (salt shorter than 8)
const std::string kApr1Openssl = "$apr1$abc$PZF73YJz5hJ9yyI.7OP.R.";
// openssl passwd -apr1 -salt 12345678 ''
const std::string kApr1OpensslEmpty = "$apr1$12345678$sHuPAw7VA9xjRbJz7zKV7/";
// htpasswd -nbs alice secret
const std::string kSha = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
// htpasswd -nbs bob ''
const std::string kShaEmpty = "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=";
// python3: base64.b64encode(sha1(b'secret' + salt).digest() + salt), salt = bytes 1..8
const std::string kSsha = "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA==";
// python3: same with password b'' and salt b'saltsalt'
const std::string kSshaEmpty = "{SSHA}LCq6zkvYuxn2cRPaFG27jMz4SRVzYWx0c2FsdA==";
// python3: same with password b'secret' and salt b'abcd' (24 bytes, no padding)
const std::string kSshaNoPad = "{SSHA}+RFhsab2AfzZ0VfEdyknXtUT06RhYmNk";
// openssl passwd -5 -salt abc secret
const std::string kSha256 = "$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0";
// openssl passwd -6 -salt abcdefgh secret
const std::string kSha512 =
    "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/"
    "1GM/O6IND4WQhG.";
// openssl passwd -6 -salt xyz secret
const std::string kSha512b =
    "$6$xyz$.93lutCQh7gdmqGUmc0pqsyIV6oV.yg/JdutjxPyVxVRhfQnlOaWqbPLlVr.r.CkGAEbx50p7atJLgFxm972z0";
// SHA-crypt specification test vectors (password "Hello world!"), explicit rounds, salt > 16.
const std::string kSha256Rounds =
    "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA";
const std::string kSha512Rounds =
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
    "UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";
// python3 crypt.crypt('', '$6$rounds=2000$rr') (openssl passwd refuses empty -5/-6 passwords)
const std::string kSha512RoundsEmpty =
    "$6$rounds=2000$rr$yWUw3Zx.isLxsx9x.6gKLbvRt5QMPkX7wTwY3jVVCsaJB6I9r3mdXOLFflOXgu2.IXQYakiiBwl"
    "SdiW3ecIvu1";

std::string with_prefix(const std::string& h, const std::string& prefix) {
  return prefix + h.substr(prefix.size());
}

// Replaces character i with another character of the hash alphabets.
std::string corrupt_at(std::string h, size_t i) {
  h[i] = (h[i] == 'A') ? 'B' : 'A';
  return h;
}

// The checks every format must pass: correct password matches; wrong, empty, one character off,
// longer, shorter, truncated hash and a corrupted character do not.
void check_format(const std::string& hash, const std::string& pw) {
  SCOPED_TRACE(hash);
  EXPECT_TRUE(htpasswd_verify(pw, hash));
  EXPECT_FALSE(htpasswd_verify("wrong", hash));
  EXPECT_FALSE(htpasswd_verify("", hash));
  std::string one_off = pw;
  one_off.back() = static_cast<char>(one_off.back() ^ 1);
  EXPECT_FALSE(htpasswd_verify(one_off, hash));
  std::string first_off = pw;
  first_off[0] = static_cast<char>(first_off[0] ^ 0x20);  // case change
  EXPECT_FALSE(htpasswd_verify(first_off, hash));
  EXPECT_FALSE(htpasswd_verify(pw + "x", hash));
  EXPECT_FALSE(htpasswd_verify(pw.substr(0, pw.size() - 1), hash));
  EXPECT_FALSE(htpasswd_verify(pw + std::string(1, '\0'), hash));
  EXPECT_FALSE(htpasswd_verify(pw + std::string(1, '\0') + "x", hash));
  // Truncated hash: by one char, by half, down to the prefix only.
  EXPECT_FALSE(htpasswd_verify(pw, hash.substr(0, hash.size() - 1)));
  EXPECT_FALSE(htpasswd_verify(pw, hash.substr(0, hash.size() / 2)));
  // Extended hash.
  EXPECT_FALSE(htpasswd_verify(pw, hash + "A"));
  EXPECT_FALSE(htpasswd_verify(pw, hash + "\n"));
  // Corrupted last and middle characters.
  EXPECT_FALSE(htpasswd_verify(pw, corrupt_at(hash, hash.size() - 2)));
  EXPECT_FALSE(htpasswd_verify(pw, corrupt_at(hash, hash.size() - 6)));
}

void check_empty_format(const std::string& hash) {
  SCOPED_TRACE(hash);
  EXPECT_TRUE(htpasswd_verify("", hash));
  EXPECT_FALSE(htpasswd_verify(" ", hash));
  EXPECT_FALSE(htpasswd_verify("secret", hash));
  EXPECT_FALSE(htpasswd_verify(std::string(1, '\0'), hash));
  EXPECT_FALSE(htpasswd_verify("", hash.substr(0, hash.size() - 1)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Kind detection.

TEST(HtpasswdKind, Prefixes) {
  EXPECT_EQ(htpasswd_hash_kind(kBcrypt), HashKind::Bcrypt);
  EXPECT_EQ(htpasswd_hash_kind(with_prefix(kBcrypt, "$2b$")), HashKind::Bcrypt);
  EXPECT_EQ(htpasswd_hash_kind(with_prefix(kBcrypt, "$2a$")), HashKind::Bcrypt);
  EXPECT_EQ(htpasswd_hash_kind(kApr1), HashKind::Apr1);
  EXPECT_EQ(htpasswd_hash_kind(kSha), HashKind::Sha1);
  EXPECT_EQ(htpasswd_hash_kind(kSsha), HashKind::Ssha);
  EXPECT_EQ(htpasswd_hash_kind(kSha256), HashKind::Sha256Crypt);
  EXPECT_EQ(htpasswd_hash_kind(kSha512), HashKind::Sha512Crypt);
}

TEST(HtpasswdKind, Unknown) {
  for (const char* h : {"", "secret", "$", "$2$", "$2x$05$abc", "$1$abc$xyz", "$y$j9T$abc$def",
                        "$apr$abc$x", "{sha}5en6G6MezRroT3XKqkdPOmY/BfQ=", "{SHA",
                        "{SMD5}abc", "abJnggxhB/yWI", "$7$abc", "*", "!"}) {
    EXPECT_EQ(htpasswd_hash_kind(h), HashKind::Unknown) << h;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification, one format at a time.

TEST(HtpasswdVerify, Bcrypt) {
  check_format(kBcrypt, "secret");
  check_empty_format(kBcryptEmpty);
}

TEST(HtpasswdVerify, BcryptVariants) {
  // $2b$ and $2a$ with the same salt and digest are the same bcrypt hash for ASCII passwords.
  for (const char* p : {"$2b$", "$2a$"}) {
    const std::string h = with_prefix(kBcrypt, p);
    check_format(h, "secret");
    check_empty_format(with_prefix(kBcryptEmpty, p));
  }
  // An unsupported variant letter is Unknown and never matches.
  EXPECT_FALSE(htpasswd_verify("secret", with_prefix(kBcrypt, "$2x$")));
  EXPECT_FALSE(htpasswd_verify("secret", with_prefix(kBcrypt, "$2$0")));
}

TEST(HtpasswdVerify, BcryptMalformed) {
  // Only the setting (prefix, cost, salt) - crypt would produce a full hash from it.
  EXPECT_FALSE(htpasswd_verify("secret", kBcrypt.substr(0, 29)));
  EXPECT_FALSE(htpasswd_verify("secret", kBcrypt.substr(0, 7)));
  EXPECT_FALSE(htpasswd_verify("secret", "$2y$"));
  // Changed cost.
  EXPECT_FALSE(htpasswd_verify("secret", "$2y$06$" + kBcrypt.substr(7)));
  // Invalid cost.
  EXPECT_FALSE(htpasswd_verify("secret", "$2y$99$" + kBcrypt.substr(7)));
  EXPECT_FALSE(htpasswd_verify("secret", "$2y$5$" + kBcrypt.substr(7)));
  // Character outside the bcrypt alphabet.
  std::string bad = kBcrypt;
  bad[40] = '*';
  EXPECT_FALSE(htpasswd_verify("secret", bad));
  // Embedded NUL in the hash.
  std::string nul = kBcrypt;
  nul[40] = '\0';
  EXPECT_FALSE(htpasswd_verify("secret", nul));
}

TEST(HtpasswdVerify, Apr1) {
  check_format(kApr1, "secret");
  check_format(kApr1Openssl, "secret");
  check_empty_format(kApr1Empty);
  check_empty_format(kApr1OpensslEmpty);
}

TEST(HtpasswdVerify, Apr1Malformed) {
  EXPECT_FALSE(htpasswd_verify("secret", "$apr1$QkuL/z91$"));
  EXPECT_FALSE(htpasswd_verify("secret", "$apr1$QkuL/z91"));
  EXPECT_FALSE(htpasswd_verify("secret", "$apr1$"));
  // Salt changed.
  EXPECT_FALSE(htpasswd_verify("secret", "$apr1$QkuL/z92$ZgH/eDgnsjvqSTdrB9iOe."));
  // Salt longer than 8 characters: Apache uses only 8, so the stored string cannot match.
  EXPECT_FALSE(htpasswd_verify("secret", "$apr1$QkuL/z91X$ZgH/eDgnsjvqSTdrB9iOe."));
  // Plain MD5-crypt ($1$) with the same tail is a different (unsupported) format.
  EXPECT_FALSE(htpasswd_verify("secret", "$1$QkuL/z91$ZgH/eDgnsjvqSTdrB9iOe."));
}

TEST(HtpasswdVerify, LongAndUtf8Passwords) {
  // Longer than one MD5 block (exercises the 16-byte loop), one-character, and UTF-8 passwords.
  // openssl passwd -apr1 -salt 'sAlT.1/x' 'a much longer password, 40 characters!!'
  check_format("$apr1$sAlT.1/x$0hoVMSTQDq3SDGBJk7qID1", "a much longer password, 40 characters!!");
  // openssl passwd -apr1 -salt x A
  EXPECT_TRUE(htpasswd_verify("A", "$apr1$x$27okd.dHQjNb1KyO.Sl9.0"));
  EXPECT_FALSE(htpasswd_verify("a", "$apr1$x$27okd.dHQjNb1KyO.Sl9.0"));
  EXPECT_FALSE(htpasswd_verify("", "$apr1$x$27okd.dHQjNb1KyO.Sl9.0"));
  // htpasswd -nbm carol 'Z\u00fcrich-\u043f\u0430\u0440\u043e\u043b\u044c-0123456789-abcdefghij'
  check_format("$apr1$Rgfg3ugi$Fjqc8LCk8.dNby1rLE.28.",
               "Z\xc3\xbcrich-\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c"
               "-0123456789-abcdefghij");
  // htpasswd -nbB -C 4 dave 'Z\u00fcrich-\u043f\u0430\u0440\u043e\u043b\u044c'
  check_format("$2y$04$9NVrv/R8EQ2CcmAYyB1eeej1q6dRUi.PaoB3o4O0/Qfizun7h2KzS",
               "Z\xc3\xbcrich-\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
  // htpasswd -nbs dave (same password)
  check_format("{SHA}jGcSbd6zCP7PMK3LbVrsOnsae7Y=",
               "Z\xc3\xbcrich-\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
}

TEST(HtpasswdVerify, Sha) {
  check_format(kSha, "secret");
  check_empty_format(kShaEmpty);
}

TEST(HtpasswdVerify, ShaMalformed) {
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ"));   // no padding
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=="));  // extra pad
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfR="));   // trailing bits
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY_BfQ="));   // base64url
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/B!Q="));  // bad char
  EXPECT_FALSE(htpasswd_verify("secret", "{SHA}"));
  EXPECT_FALSE(htpasswd_verify("secret", "{sha}5en6G6MezRroT3XKqkdPOmY/BfQ="));  // case
  EXPECT_FALSE(htpasswd_verify("secret", " {SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="));
}

TEST(HtpasswdVerify, Ssha) {
  check_format(kSsha, "secret");
  check_format(kSshaNoPad, "secret");
  check_empty_format(kSshaEmpty);
}

TEST(HtpasswdVerify, SshaMalformed) {
  // Corrupted base64: invalid character, bad padding, bad length, non-canonical trailing bits.
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA="));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA"));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCB=="));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItss!cTnvXWRjNgBAgMEBQYHCA=="));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFz=ul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA=="));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCA===="));
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}"));
  // Decodes to fewer than 20 bytes.
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWR"));
  // Salt altered (the digest then no longer matches).
  EXPECT_FALSE(htpasswd_verify("secret", "{SSHA}lHFzXul4wnzRItssVcTnvXWRjNgBAgMEBQYHCQ=="));
  // An empty salt is allowed (as in nginx): then {SSHA} carries the same bytes as {SHA}.
  EXPECT_TRUE(htpasswd_verify("secret", "{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ="));
  EXPECT_FALSE(htpasswd_verify("secreT", "{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ="));
}

TEST(HtpasswdVerify, Sha256Crypt) {
  check_format(kSha256, "secret");
  check_format(kSha256Rounds, "Hello world!");
}

TEST(HtpasswdVerify, Sha512Crypt) {
  check_format(kSha512, "secret");
  check_format(kSha512b, "secret");
  check_format(kSha512Rounds, "Hello world!");
  check_empty_format(kSha512RoundsEmpty);
}

TEST(HtpasswdVerify, ShaCryptMalformed) {
  EXPECT_FALSE(htpasswd_verify("secret", "$5$abc$"));
  EXPECT_FALSE(htpasswd_verify("secret", "$5$abc"));
  EXPECT_FALSE(htpasswd_verify("secret", "$5$"));
  EXPECT_FALSE(htpasswd_verify("secret", "$6$"));
  // Same digest with a different algorithm number.
  EXPECT_FALSE(htpasswd_verify("secret", "$6$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0"));
  // Rounds changed or invalid.
  EXPECT_FALSE(htpasswd_verify("Hello world!", "$5$rounds=10001$saltstringsaltst$3xv.VbSHBb41AL9AvL"
                                               "eujZkZRBAwqFMz2.opqey6IcA"));
  EXPECT_FALSE(htpasswd_verify("Hello world!", "$5$rounds=10$saltstringsaltst$3xv.VbSHBb41AL9AvLeuj"
                                               "ZkZRBAwqFMz2.opqey6IcA"));
}

TEST(HtpasswdVerify, PasswordLengthLimit) {
  // 511 bytes is the longest accepted password (libxcrypt's limit, applied to all formats).
  const std::string pw511(511, 'p');
  // python3: "{SHA}" + base64(sha1(b'p' * 511))
  EXPECT_TRUE(htpasswd_verify(pw511, "{SHA}9P+KI/1bhU8N0weaKoJmrBgxkPY="));
  // python3: "{SHA}" + base64(sha1(b'p' * 512)) - correct, but over the limit
  EXPECT_FALSE(htpasswd_verify(std::string(512, 'p'), "{SHA}XMGL/vWQd5Y1BTrMWh6byuidHgA="));
  EXPECT_FALSE(htpasswd_verify(std::string(100000, 'p'), kApr1));
}

TEST(HtpasswdVerify, UnknownNeverMatches) {
  EXPECT_FALSE(htpasswd_verify("secret", "secret"));  // plain text
  EXPECT_FALSE(htpasswd_verify("", ""));
  EXPECT_FALSE(htpasswd_verify("secret", "abJnggxhB/yWI"));  // DES crypt("secret", "ab")
  EXPECT_FALSE(htpasswd_verify("secret", "$1$abc$"));
  // yescrypt, supported by libxcrypt but not by auth_basic_user_file: must not reach crypt.
  EXPECT_FALSE(htpasswd_verify("secret", "$y$j9T$abc$def"));
}

TEST(HtpasswdVerify, ThreadSafe) {
  // Several formats verified concurrently from several threads must all give the right answer.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&failures] {
      for (int i = 0; i < 5; i++) {
        if (!htpasswd_verify("secret", kBcrypt)) failures++;
        if (htpasswd_verify("secreT", kBcrypt)) failures++;
        if (!htpasswd_verify("secret", kSha512)) failures++;
        if (!htpasswd_verify("secret", kSha256)) failures++;
        if (!htpasswd_verify("secret", kApr1)) failures++;
        if (htpasswd_verify("secreT", kApr1)) failures++;
        if (!htpasswd_verify("secret", kSsha)) failures++;
        if (!htpasswd_verify("secret", kSha)) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// Dummy hashes.

namespace {

void check_dummy(const std::string& like, HashKind kind, const std::string& prefix) {
  SCOPED_TRACE(like);
  const std::string d = htpasswd_dummy_hash(like);
  EXPECT_EQ(htpasswd_hash_kind(d), kind) << d;
  EXPECT_EQ(d.substr(0, prefix.size()), prefix) << d;
  EXPECT_FALSE(htpasswd_verify("", d));
  EXPECT_FALSE(htpasswd_verify("secret", d));
  EXPECT_NE(d, like);
  // Random salt: two dummies differ.
  EXPECT_NE(d, htpasswd_dummy_hash(like));
}

}  // namespace

TEST(HtpasswdDummy, Bcrypt) {
  check_dummy(kBcrypt, HashKind::Bcrypt, "$2y$05$");
  check_dummy(with_prefix(kBcrypt, "$2b$"), HashKind::Bcrypt, "$2b$05$");
  check_dummy(with_prefix(kBcrypt, "$2a$"), HashKind::Bcrypt, "$2a$05$");
  check_dummy("$2y$04$" + kBcrypt.substr(7), HashKind::Bcrypt, "$2y$04$");
  const std::string d = htpasswd_dummy_hash(kBcrypt);
  EXPECT_EQ(d.size(), kBcrypt.size());
  // Invalid cost: falls back to cost 10 rather than failing.
  check_dummy("$2y$99$" + kBcrypt.substr(7), HashKind::Bcrypt, "$2y$10$");
}

TEST(HtpasswdDummy, ShaCrypt) {
  check_dummy(kSha256, HashKind::Sha256Crypt, "$5$");
  check_dummy(kSha512, HashKind::Sha512Crypt, "$6$");
  check_dummy(kSha256Rounds, HashKind::Sha256Crypt, "$5$rounds=10000$");
  check_dummy(kSha512Rounds, HashKind::Sha512Crypt, "$6$rounds=10000$");
  check_dummy(kSha512RoundsEmpty, HashKind::Sha512Crypt, "$6$rounds=2000$");
  // No rounds in `like` -> none in the dummy (default cost).
  EXPECT_EQ(htpasswd_dummy_hash(kSha512).find("rounds="), std::string::npos);
  // Invalid rounds: default rounds.
  const std::string d = htpasswd_dummy_hash("$5$rounds=10$abc$xyz");
  EXPECT_EQ(htpasswd_hash_kind(d), HashKind::Sha256Crypt);
  EXPECT_EQ(d.find("rounds="), std::string::npos);
}

TEST(HtpasswdDummy, Apr1ShaSsha) {
  check_dummy(kApr1, HashKind::Apr1, "$apr1$");
  check_dummy(kSha, HashKind::Sha1, "{SHA}");
  check_dummy(kSsha, HashKind::Ssha, "{SSHA}");
  EXPECT_EQ(htpasswd_dummy_hash(kSha).size(), kSha.size());
  const std::string a = htpasswd_dummy_hash(kApr1);
  EXPECT_EQ(a.size(), kApr1.size());  // 8-char salt, 22-char digest
}

TEST(HtpasswdDummy, KeepsSaltLength) {
  // Salt length changes the cost of $apr1$ and SHA-crypt, so dummies keep it.
  for (const std::string& like : {kApr1, kApr1Openssl, kApr1OpensslEmpty, kSha256, kSha512,
                                   kSha512b, kSha256Rounds, kSha512Rounds, kSha512RoundsEmpty,
                                   kSsha, kSshaNoPad, kSshaEmpty, kBcrypt, kSha}) {
    const std::string d = htpasswd_dummy_hash(like);
    EXPECT_EQ(d.size(), like.size()) << like << " -> " << d;
    EXPECT_EQ(d.rfind('$'), like.rfind('$')) << like << " -> " << d;
  }
  // Salt longer than crypt uses (16): capped.
  EXPECT_EQ(htpasswd_dummy_hash("$5$saltstringsaltstring$x").substr(0, 20).rfind('$'), 19u);
}

TEST(HtpasswdDummy, UnknownGivesApr1) {
  for (const char* like : {"", "secret", "abJnggxhB/yWI", "$y$j9T$abc$def"}) {
    check_dummy(like, HashKind::Apr1, "$apr1$");
  }
}

TEST(HtpasswdDummy, Apr1WellFormed) {
  const std::string d = htpasswd_dummy_hash(kApr1);
  ASSERT_EQ(d.size(), 37u);
  EXPECT_EQ(d[14], '$');
  for (char c : d.substr(6, 8) + d.substr(15)) {
    EXPECT_TRUE(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/') << d;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

TEST(HtpasswdParse, Lines) {
  std::string_view u, h;
  const std::string full = "alice:" + kBcrypt;
  ASSERT_TRUE(htpasswd_parse_line(full, &u, &h));
  EXPECT_EQ(u, "alice");
  EXPECT_EQ(h, kBcrypt);

  ASSERT_TRUE(htpasswd_parse_line("alice:hash\n", &u, &h));
  EXPECT_EQ(h, "hash");
  ASSERT_TRUE(htpasswd_parse_line("alice:hash\r\n", &u, &h));
  EXPECT_EQ(h, "hash");
  ASSERT_TRUE(htpasswd_parse_line("alice:hash\r", &u, &h));
  EXPECT_EQ(h, "hash");
  // Anything after a second ':' is ignored.
  ASSERT_TRUE(htpasswd_parse_line("alice:hash:Alice Liddell:extra\r\n", &u, &h));
  EXPECT_EQ(u, "alice");
  EXPECT_EQ(h, "hash");
  // Empty hash is returned as such (and verifies as Unknown).
  ASSERT_TRUE(htpasswd_parse_line("alice:", &u, &h));
  EXPECT_EQ(u, "alice");
  EXPECT_EQ(h, "");
  // Spaces are significant (exact match, like Apache).
  ASSERT_TRUE(htpasswd_parse_line(" alice :hash", &u, &h));
  EXPECT_EQ(u, " alice ");
  // Null out-parameters are allowed.
  EXPECT_TRUE(htpasswd_parse_line("alice:hash", nullptr, nullptr));
}

TEST(HtpasswdParse, Rejects) {
  std::string_view u = "unchanged", h = "unchanged";
  for (const char* line : {"", "\n", "\r\n", "\r", "# alice:hash", "#", "alice", "alice\n:hash",
                           ":hash", ":", "   "}) {
    EXPECT_FALSE(htpasswd_parse_line(line, &u, &h)) << line;
  }
  EXPECT_EQ(u, "unchanged");
  EXPECT_EQ(h, "unchanged");
}

TEST(HtpasswdFind, MultiLine) {
  const std::string file =
      "# users for the test site\n"
      "\n"
      "al:" + kApr1 + "\r\n"
      "alice:" + kBcrypt + "\r\n"
      "   \r\n"
      "#bob:" + kSha + "\r\n"
      "alice2:" + kSha + "\n"
      "Bob:" + kSsha + ":Bob Example\n"
      "carol:" + kSha512 + "\r\n"
      "alice:" + kSha256 + "\n"   // duplicate: the first one wins
      "dave:" + kSha256;           // no final newline
  std::string_view h;

  ASSERT_TRUE(htpasswd_find(file, "alice", &h));
  EXPECT_EQ(h, kBcrypt);
  EXPECT_TRUE(htpasswd_verify("secret", h));

  ASSERT_TRUE(htpasswd_find(file, "al", &h));  // prefix of "alice"
  EXPECT_EQ(h, kApr1);
  ASSERT_TRUE(htpasswd_find(file, "alice2", &h));  // "alice" is a prefix of it
  EXPECT_EQ(h, kSha);
  ASSERT_TRUE(htpasswd_find(file, "Bob", &h));
  EXPECT_EQ(h, kSsha);
  ASSERT_TRUE(htpasswd_find(file, "carol", &h));
  EXPECT_EQ(h, kSha512);  // CR stripped
  ASSERT_TRUE(htpasswd_find(file, "dave", &h));
  EXPECT_EQ(h, kSha256);

  // Case-sensitive, exact, commented-out users absent.
  EXPECT_FALSE(htpasswd_find(file, "bob", &h));
  EXPECT_FALSE(htpasswd_find(file, "#bob", &h));
  EXPECT_FALSE(htpasswd_find(file, "ALICE", &h));
  EXPECT_FALSE(htpasswd_find(file, "a", &h));
  EXPECT_FALSE(htpasswd_find(file, "alic", &h));
  EXPECT_FALSE(htpasswd_find(file, "alice ", &h));
  EXPECT_FALSE(htpasswd_find(file, "alice:", &h));
  EXPECT_FALSE(htpasswd_find(file, "", &h));
  EXPECT_FALSE(htpasswd_find(file, "   ", &h));
  EXPECT_FALSE(htpasswd_find(file, "eve", &h));
  EXPECT_FALSE(htpasswd_find("", "alice", &h));
  EXPECT_FALSE(htpasswd_find("\n\n\r\n", "alice", &h));
}

TEST(HtpasswdFind, BareCrAndNoNewline) {
  std::string_view h;
  ASSERT_TRUE(htpasswd_find("a:1\rb:2\rc:3", "b", &h));
  EXPECT_EQ(h, "2");
  ASSERT_TRUE(htpasswd_find("c:3", "c", &h));
  EXPECT_EQ(h, "3");
  EXPECT_TRUE(htpasswd_find("c:3", "c", nullptr));
}

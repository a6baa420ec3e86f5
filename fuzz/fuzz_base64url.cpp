// libFuzzer target: base64url_decode / base64url_encode / base64url_encode_to (src/core/base64url.h).
//
// Input: any bytes, used both as a base64url text to decode and as binary data to encode.
// Properties:
//   - decode accepts exactly what an independent reference accepts (alphabet, no padding,
//     len % 4 != 1, canonical trailing bits) and only appends to out;
//   - decode ok  =>  encode(decoded) == input (the encoding is canonical) and the lengths agree;
//   - encode(x) is base64url_encoded_len(|x|) alphabet characters and decodes back to x;
//   - encode_to writes exactly base64url_encoded_len(n) bytes (exact-size heap buffer: ASan).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "base64url.h"

#include "fuzz_check.h"

namespace {

int ref_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Bit-accumulator reference decoder (a different algorithm from the one under test).
bool ref_decode(std::string_view in, std::string* out) {
  if (in.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    const int v = ref_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Left-over bits must be zero (canonical encoding).
  return (acc & ((1u << bits) - 1)) == 0;
}

bool in_alphabet(char c) { return ref_value(static_cast<unsigned char>(c)) >= 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // Decode, appending after a prefix.
  sess::pstring out("prefix");
  const bool ok = sess::base64url_decode(in, out);
  std::string ref;
  const bool ref_ok = ref_decode(in, &ref);
  FUZZ_CHECK(ok == ref_ok);
  if (ok) {
    FUZZ_CHECK(out.size() >= 6 && out.compare(0, 6, "prefix") == 0);
    const std::string_view dec = std::string_view(out).substr(6);
    FUZZ_CHECK(dec == ref);
    FUZZ_CHECK(sess::base64url_encoded_len(dec.size()) == size);
    sess::pstring re;
    sess::base64url_encode(dec, re);
    FUZZ_CHECK(std::string_view(re) == in);
  }

  // Encode the input as binary data.
  sess::pstring enc("x");
  sess::base64url_encode(in, enc);
  const size_t len = sess::base64url_encoded_len(size);
  FUZZ_CHECK(enc.size() == 1 + len && enc[0] == 'x');
  for (size_t i = 1; i < enc.size(); i++) FUZZ_CHECK(in_alphabet(enc[i]));
  sess::pstring back;
  FUZZ_CHECK(sess::base64url_decode(std::string_view(enc).substr(1), back));
  FUZZ_CHECK(std::string_view(back) == in);

  // encode_to into a buffer of exactly the announced size.
  std::unique_ptr<char[]> buf(new char[len]);  // exact size: an overrun is an ASan report
  sess::base64url_encode_to(data, size, buf.get());
  FUZZ_CHECK(std::memcmp(buf.get(), enc.data() + 1, len) == 0);
  return 0;
}

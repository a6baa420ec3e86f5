// libFuzzer target: chunked session cookies (src/core/chunks.h) - the head, the chunk names,
// collecting chunks from Cookie headers, joining, and the split the filter writes.
//
// Input: "NAME\nHEADER" (split at the first LF); without a LF the name is "s" and the whole input
// is the header. The raw input also seeds a value and the split's parameters.
// Properties:
//   chunk_head_parse / chunk_index - agree with independent references (canonical decimal,
//                   2..16 for a head, 1..15 for a chunk name, non-empty slice).
//   chunk_cookies_collect - agrees with a reference scan (first value, duplicates, presence); the
//                   same header twice changes nothing; values are views into the header.
//   chunk_assemble - on Ok, out is exactly the head's slice then NAME_1 .. NAME_{k-1}; otherwise
//                   out is empty and the status is the first reason the reference finds.
//   split round trip - for any value length, attribute overhead and chunks=: every Set-Cookie
//                   line (cookie_build) is within kMaxSetCookieLen, slices are non-empty and
//                   cover the value, the fewest cookies are used, and the Cookie header of the
//                   lines (with HEADER's cookies around them) joins to exactly the value - or,
//                   when HEADER carries another value of one of the chunks, is refused
//                   (Duplicate, or Missing when that value is empty): never a different value.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "chunks.h"
#include "cookie.h"

#include "fuzz_check.h"

namespace {

bool within(std::string_view outer, std::string_view inner) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

std::string_view ref_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Canonical decimal in [lo, hi], or 0.
size_t ref_number(std::string_view d, size_t lo, size_t hi) {
  if (d.empty() || d.size() > 2 || d[0] == '0') return 0;
  size_t v = 0;
  for (char c : d) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  return v >= lo && v <= hi ? v : 0;
}

size_t ref_index(std::string_view session, std::string_view name) {
  if (session.empty() || name.size() <= session.size() + 1) return 0;
  if (name.substr(0, session.size()) != session || name[session.size()] != '_') return 0;
  return ref_number(name.substr(session.size() + 1), 1, sess::kMaxChunks - 1);
}

struct RefChunk {
  bool present = false;
  bool conflict = false;
  std::string_view first;
};

void ref_collect(std::string_view header, std::string_view session, RefChunk (&out)[16]) {
  std::string_view rest = header;
  for (;;) {
    const size_t semi = rest.find(';');
    const std::string_view pair = rest.substr(0, semi);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos) {
      const size_t i = ref_index(session, ref_trim(pair.substr(0, eq)));
      if (i != 0) {
        std::string_view v = ref_trim(pair.substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        if (!out[i].present) {
          out[i].present = true;
          out[i].first = v;
        } else if (v != out[i].first) {
          out[i].conflict = true;
        }
      }
    }
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
}

uint32_t read_u32(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4 && i < n; i++) v = v << 8 | p[i];
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view name = "s";
  std::string_view header = in;
  const size_t lf = in.find('\n');
  if (lf != std::string_view::npos) {
    name = in.substr(0, lf);
    header = in.substr(lf + 1);
  }

  // --- chunk_head_parse -----------------------------------------------------------------------
  {
    sess::ChunkHead h;
    const bool ok = sess::chunk_head_parse(header, &h);
    if (!sess::chunk_head_like(header)) {
      FUZZ_CHECK(ok && h.count == 1 && h.slice.data() == header.data() &&
                 h.slice.size() == header.size());
    } else {
      const size_t dot = header.find('.');
      const size_t k = dot == std::string_view::npos
                           ? 0
                           : ref_number(header.substr(0, dot), 2, sess::kMaxChunks);
      const bool ref_ok = k != 0 && dot + 1 < header.size();
      FUZZ_CHECK(ok == ref_ok);
      if (ok) {
        FUZZ_CHECK(h.count == k && h.slice == header.substr(dot + 1) && within(header, h.slice));
      }
    }
  }

  // --- chunk_index ----------------------------------------------------------------------------
  FUZZ_CHECK(sess::chunk_index(name, header) == ref_index(name, header));
  if (const size_t i = sess::chunk_index(name, header)) {
    FUZZ_CHECK(sess::cookie_is_session_own(name, header));
    sess::pstring n;
    sess::chunk_name(name, i, n);
    FUZZ_CHECK(std::string_view(n) == header);  // canonical: one name per index
  }

  // --- chunk_cookies_collect ------------------------------------------------------------------
  sess::ChunkCookies c;
  sess::chunk_cookies_collect(header, name, c);
  RefChunk ref[16];
  ref_collect(header, name, ref);
  FUZZ_CHECK(!(c.present & 1u));
  for (size_t i = 1; i < sess::kMaxChunks; i++) {
    const bool p = (c.present >> i) & 1u;
    FUZZ_CHECK(p == ref[i].present);
    if (!p) continue;
    FUZZ_CHECK(c.value[i] == ref[i].first && within(header, c.value[i]));
    FUZZ_CHECK((c.distinct[i] > 1) == ref[i].conflict);
  }
  sess::ChunkCookies c2 = c;  // the same header line again
  sess::chunk_cookies_collect(header, name, c2);
  FUZZ_CHECK(c2.present == c.present);
  for (size_t i = 1; i < sess::kMaxChunks; i++) {
    FUZZ_CHECK(c2.distinct[i] == c.distinct[i] && c2.value[i].data() == c.value[i].data());
  }

  // --- chunk_assemble on the header's own NAME ------------------------------------------------
  sess::CookieCandidates first;
  sess::cookie_collect(header, name, first);
  for (size_t f = 0; f < first.count; f++) {
    const std::string_view v = first.values[f];
    if (!sess::chunk_head_like(v)) continue;
    for (size_t max : {size_t{1}, size_t{3}, sess::kMaxChunks}) {
      sess::pstring out = "junk";
      const sess::ChunkRead r = sess::chunk_assemble(v, max, c, out);
      sess::ChunkHead h;
      if (!sess::chunk_head_parse(v, &h)) {
        FUZZ_CHECK(r == sess::ChunkRead::BadHead && out.empty());
        continue;
      }
      if (h.count > max) {
        FUZZ_CHECK(r == sess::ChunkRead::TooMany && out.empty());
        continue;
      }
      sess::ChunkRead want = sess::ChunkRead::Ok;
      std::string joined(h.slice);
      for (size_t i = 1; i < h.count && want == sess::ChunkRead::Ok; i++) {
        if (!ref[i].present || ref[i].first.empty()) {
          want = sess::ChunkRead::Missing;
        } else if (ref[i].conflict) {
          want = sess::ChunkRead::Duplicate;
        } else {
          joined.append(ref[i].first);
        }
      }
      FUZZ_CHECK(r == want);
      FUZZ_CHECK(r == sess::ChunkRead::Ok ? std::string_view(out) == joined : out.empty());
    }
  }

  // --- split round trip -----------------------------------------------------------------------
  const uint32_t seed = read_u32(data, size);
  const size_t max = 1 + seed % sess::kMaxChunks;
  const size_t len = (seed >> 4) % (max * sess::kMaxSetCookieLen + 64);  // around the bound
  sess::CookieAttrs a;
  std::string path = "/";
  path.append((seed >> 20) % 300, 'p');
  a.path = path;
  a.httponly = seed & 0x100000;
  a.samesite = static_cast<sess::SameSite>((seed >> 24) & 3);
  a.max_age = (seed & 0x8000000) ? 86400 : -1;
  const std::string sname = sess::cookie_name_valid(name) && name.size() <= 256
                                ? std::string(name) : std::string("s");
  static const char kB64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string value(len, 'A');
  for (size_t i = 0; i < len; i++) value[i] = kB64[(i * 7 + (size ? data[i % size] : 0)) & 63];
  if (!value.empty()) value[0] = 'A';  // an envelope starts with its version byte
  sess::pstring empty_line;
  sess::cookie_build(sname, "", a, empty_line);
  const sess::ChunkSplit sp = sess::chunk_split(len, empty_line.size(), max);
  if (sp.count == 0) {
    FUZZ_CHECK(len > sp.capacity);
    return 0;
  }
  FUZZ_CHECK(sp.count <= max);
  if (sp.count > 1) FUZZ_CHECK(sess::chunk_split(len, empty_line.size(), sp.count - 1).count == 0);
  size_t sum = 0;
  std::string cookie_hdr;
  std::vector<std::string> values;
  for (size_t i = 0; i < sp.count; i++) {
    sum += sp.len[i];
    if (sp.count > 1) FUZZ_CHECK(sp.len[i] > 0);
    sess::pstring n, v, line;
    if (i == 0) {
      n = sname;
    } else {
      sess::chunk_name(sname, i, n);
    }
    sess::chunk_value(sp, value, i, v);
    sess::cookie_build(n, v, a, line);
    FUZZ_CHECK(line.size() <= sess::kMaxSetCookieLen);
    FUZZ_CHECK(sess::cookie_value_valid(v));
    values.emplace_back(v);
    cookie_hdr += (i ? "; " : "") + std::string(n) + "=" + std::string(v);
  }
  FUZZ_CHECK(sum == len);
  if (sp.count == 1) {
    FUZZ_CHECK(values[0] == value);
    return 0;
  }
  // The browser's header, with the fuzz input's cookies before it (a planted chunk, junk).
  const std::string both = std::string(header) + ";" + cookie_hdr;
  sess::ChunkCookies cc;
  sess::chunk_cookies_collect(both, sname, cc);
  sess::pstring out;
  const sess::ChunkRead r = sess::chunk_assemble(values[0], max, cc, out);
  bool planted = false;  // the input carries another value of one of the chunks
  sess::ChunkCookies only;
  sess::chunk_cookies_collect(header, sname, only);
  for (size_t i = 1; i < sp.count; i++) {
    if ((only.present >> i & 1u) && (only.value[i] != values[i] || only.distinct[i] > 1)) {
      planted = true;
    }
  }
  if (planted) {  // Duplicate (Missing if the planted value is empty and comes first)
    FUZZ_CHECK((r == sess::ChunkRead::Duplicate || r == sess::ChunkRead::Missing) && out.empty());
  } else {
    FUZZ_CHECK(r == sess::ChunkRead::Ok && std::string_view(out) == value);
  }
  return 0;
}

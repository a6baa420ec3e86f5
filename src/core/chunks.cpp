// Large sessions in several cookies (see chunks.h).
#include "chunks.h"

namespace sess {

namespace {

// Decimal 1..max without sign or leading zero, the whole of text.
bool parse_small(std::string_view text, size_t max, size_t* n) noexcept {
  if (text.empty() || text.size() > 2 || text[0] == '0') return false;
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  if (v < 1 || v > max) return false;
  *n = v;
  return true;
}

size_t digits(size_t v) noexcept {
  size_t d = 1;
  while (v >= 10) {
    v /= 10;
    d++;
  }
  return d;
}

void append_decimal(size_t v, pstring& out) {
  char buf[20];
  size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out.push_back(buf[--n]);
}

}  // namespace

bool chunks_parse(std::string_view text, size_t* n) noexcept {
  return parse_small(text, kMaxChunks, n);
}

bool chunk_head_parse(std::string_view value, ChunkHead* out) noexcept {
  if (!chunk_head_like(value)) {
    out->count = 1;
    out->slice = value;
    return true;
  }
  const size_t dot = value.find('.');
  size_t k = 0;
  if (dot == std::string_view::npos || !parse_small(value.substr(0, dot), kMaxChunks, &k) ||
      k < 2 || dot + 1 >= value.size()) {
    return false;
  }
  out->count = k;
  out->slice = value.substr(dot + 1);
  return true;
}

size_t chunk_index(std::string_view session_name, std::string_view cookie_name) noexcept {
  if (session_name.empty() || cookie_name.size() < session_name.size() + 2 ||
      cookie_name.compare(0, session_name.size(), session_name) != 0 ||
      cookie_name[session_name.size()] != '_') {
    return 0;
  }
  size_t i = 0;
  if (!parse_small(cookie_name.substr(session_name.size() + 1), kMaxChunks - 1, &i)) return 0;
  return i;
}

void chunk_cookies_collect(std::string_view header, std::string_view session_name,
                           ChunkCookies& acc) noexcept {
  cookie_for_each_pair(header, [&](std::string_view name, std::string_view value) noexcept {
    const size_t i = chunk_index(session_name, name);
    if (i == 0) return;
    const uint32_t bit = 1u << i;
    if (!(acc.present & bit)) {
      acc.present |= bit;
      acc.value[i] = value;
      acc.distinct[i] = 1;
    } else if (value != acc.value[i]) {
      acc.distinct[i] = 2;
    }
  });
}

ChunkJoin chunk_join(const ChunkHead& head, const ChunkCookies& chunks, pstring& out) {
  out.clear();
  const size_t count = head.count < kMaxChunks ? head.count : kMaxChunks;
  size_t len = head.slice.size();
  for (size_t i = 1; i < count; i++) {
    if (!(chunks.present & (1u << i)) || chunks.value[i].empty()) return ChunkJoin::Missing;
    if (chunks.distinct[i] > 1) return ChunkJoin::Duplicate;
    len += chunks.value[i].size();
  }
  out.reserve(len);
  out.append(head.slice.data(), head.slice.size());
  for (size_t i = 1; i < count; i++) out.append(chunks.value[i].data(), chunks.value[i].size());
  return ChunkJoin::Ok;
}

ChunkRead chunk_assemble(std::string_view value, size_t max_chunks, const ChunkCookies& chunks,
                         pstring& joined) {
  joined.clear();
  ChunkHead head;
  if (!chunk_head_parse(value, &head)) return ChunkRead::BadHead;
  if (head.count > max_chunks) return ChunkRead::TooMany;
  switch (chunk_join(head, chunks, joined)) {
    case ChunkJoin::Ok: return ChunkRead::Ok;
    case ChunkJoin::Missing: return ChunkRead::Missing;
    case ChunkJoin::Duplicate: break;
  }
  return ChunkRead::Duplicate;
}

const char* chunk_read_text(ChunkRead r) noexcept {
  switch (r) {
    case ChunkRead::Ok: return nullptr;
    case ChunkRead::BadHead: return "malformed chunk head";
    case ChunkRead::TooMany: return "split into more cookies than chunks= allows";
    case ChunkRead::Missing: return "a chunk cookie is missing";
    case ChunkRead::Duplicate: return "a chunk cookie was sent twice with different values";
  }
  return "malformed chunks";
}

ChunkSplit chunk_split(size_t value_len, size_t line_overhead, size_t max_chunks,
                       size_t line_max) noexcept {
  ChunkSplit s;
  if (max_chunks > kMaxChunks) max_chunks = kMaxChunks;
  if (max_chunks < 1) max_chunks = 1;
  // The value bytes one line with this much else on it holds.
  auto room = [line_max](size_t overhead) noexcept -> size_t {
    return overhead < line_max ? line_max - overhead : 0;
  };
  if (line_overhead + value_len <= line_max) {
    s.count = 1;
    s.len[0] = value_len;
    return s;
  }
  size_t capacity = room(line_overhead);
  for (size_t k = 2; k <= max_chunks; k++) {
    // The head's room with this count, and the chunks 1 .. k-1.
    const size_t head = room(line_overhead + digits(k) + 1);
    size_t rest = 0;
    for (size_t i = 1; i < k; i++) rest += room(line_overhead + 1 + digits(i));
    capacity = head + rest;
    if (value_len > capacity || head == 0) continue;
    s.count = k;
    size_t left = value_len;
    for (size_t i = 0; i < k; i++) {
      const size_t r = i == 0 ? head : room(line_overhead + 1 + digits(i));
      s.len[i] = left < r ? left : r;
      left -= s.len[i];
    }
    return s;
  }
  s.capacity = capacity;
  return s;
}

void chunk_name(std::string_view session_name, size_t i, pstring& out) {
  out.append(session_name.data(), session_name.size());
  out.push_back('_');
  append_decimal(i, out);
}

void chunk_value(const ChunkSplit& split, std::string_view value, size_t i, pstring& out) {
  if (split.count <= 1) {
    out.append(value.data(), value.size());
    return;
  }
  size_t off = 0;
  for (size_t j = 0; j < i && j < kMaxChunks; j++) off += split.len[j];
  if (i == 0) {
    append_decimal(split.count, out);
    out.push_back('.');
  }
  if (off > value.size() || i >= kMaxChunks) return;
  std::string_view slice = value.substr(off, split.len[i]);
  out.append(slice.data(), slice.size());
}

}  // namespace sess

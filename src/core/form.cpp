// application/x-www-form-urlencoded decoding (login POST bodies).
#include "form.h"

namespace sess {

namespace {

// Appends the decoded form of in to out; plus_is_space selects form ('+' = ' ') semantics.
// Returns false on a '%' not followed by two hex digits.
bool decode_into(std::string_view in, pstring& out, bool plus_is_space) {
  out.reserve(out.size() + in.size());
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.append(in.data() + run, i - run);
      out.push_back(static_cast<char>((hi << 4) | lo));
      i += 3;
      run = i;
    } else if (c == '+' && plus_is_space) {
      out.append(in.data() + run, i - run);
      out.push_back(' ');
      i++;
      run = i;
    } else {
      i++;
    }
  }
  out.append(in.data() + run, in.size() - run);
  return true;
}

}  // namespace

FormResult form_decode(std::string_view body, FormFields& out, size_t max_fields) {
  const size_t original = out.size();
  size_t fields = 0;
  size_t pos = 0;
  const size_t n = body.size();
  FormResult result = FormResult::Ok;
  while (pos <= n) {
    size_t amp = body.find('&', pos);
    if (amp == std::string_view::npos) amp = n;
    const std::string_view pair = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    if (++fields > max_fields) {
      result = FormResult::TooManyFields;
      break;
    }
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    auto* mr = out.get_allocator().resource();
    out.emplace_back(pstring(mr), pstring(mr));
    auto& field = out.back();
    if (!decode_into(name, field.first, true) || !decode_into(value, field.second, true)) {
      result = FormResult::Malformed;
      break;
    }
  }
  if (result != FormResult::Ok) {
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(original), out.end());
  }
  return result;
}

const pstring* form_get(const FormFields& fields, std::string_view name) noexcept {
  for (const auto& f : fields) {
    if (std::string_view(f.first) == name) return &f.second;
  }
  return nullptr;
}

bool percent_decode(std::string_view in, pstring& out) {
  const size_t original = out.size();
  if (!decode_into(in, out, false)) {
    out.resize(original);
    return false;
  }
  return true;
}

}  // namespace sess

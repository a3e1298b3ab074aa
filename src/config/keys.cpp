#include "config/keys.hpp"

#include <charconv>

namespace r1 {

namespace {
std::string number_text(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
}  // namespace

std::string_view key_type_name(KeyType t) {
  switch (t) {
    case KeyType::integer: return "int";
    case KeyType::real: return "float";
    case KeyType::boolean: return "bool";
    case KeyType::string: return "string";
    case KeyType::path: return "path";
    case KeyType::input_path: return "input path";
    case KeyType::choice: return "enum";
    case KeyType::int_list: return "int list";
  }
  return "?";
}

std::string KeyDecl::full_name() const { return std::string(section) + "." + std::string(key); }

std::string KeyDecl::range_text() const {
  std::string lo, hi;
  if (type == KeyType::integer || type == KeyType::int_list) {
    if (imin != std::numeric_limits<std::int64_t>::min()) lo = std::to_string(imin);
    if (imax != kNoMax) hi = std::to_string(imax);
  } else if (type == KeyType::real) {
    if (fmin != -std::numeric_limits<double>::infinity()) lo = number_text(fmin);
    if (fmax != std::numeric_limits<double>::infinity()) hi = number_text(fmax);
  }
  if (!lo.empty() && !hi.empty()) return lo + " .. " + hi;
  if (!lo.empty()) return ">= " + lo;
  if (!hi.empty()) return "<= " + hi;
  return {};
}

}  // namespace r1

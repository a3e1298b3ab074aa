#include "deck/value.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/error.hpp"
#include "deck/ini.hpp"
#include "deck/suggest.hpp"

namespace r1 {

namespace {

std::string expected(const KeyDecl& d) {
  std::string e = "expected ";
  e += d.type == KeyType::int_list ? "a comma-separated list of ints" : std::string(key_type_name(d.type));
  const std::string range = d.range_text();
  if (!range.empty()) e += (d.type == KeyType::int_list ? ", each " : ", ") + range;
  return "(" + e + ")";
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

bool int_in_range(const KeyDecl& d, std::int64_t v) { return v >= d.imin && v <= d.imax; }

// "${NAME}" -> getenv("NAME"); a '$' not followed by '{' is kept as it is.
std::optional<std::string> expand_env(std::string_view s, std::string& problem) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '$' || i + 1 >= s.size() || s[i + 1] != '{') {
      out += s[i];
      continue;
    }
    const auto close = s.find('}', i + 2);
    if (close == std::string_view::npos) {
      problem = "unterminated ${ (expected ${NAME})";
      return std::nullopt;
    }
    const std::string name(s.substr(i + 2, close - i - 2));
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      problem = "environment variable " + name + " is not set (expected ${NAME} to name a set variable)";
      return std::nullopt;
    }
    out += value;
    i = close;
  }
  return out;
}

}  // namespace

std::optional<KeyValue> parse_deck_value(const KeyDecl& d, std::string_view text, std::string& problem) {
  switch (d.type) {
    case KeyType::integer: {
      const auto v = parse_int(text);
      if (!v) {
        problem = "not an integer " + expected(d);
        return std::nullopt;
      }
      if (!int_in_range(d, *v)) {
        problem = "out of range " + expected(d);
        return std::nullopt;
      }
      return KeyValue{*v};
    }
    case KeyType::real: {
      // from_chars parses "inf" and "nan" too, and those are never sensible deck values.
      double v = 0;
      const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(v)) {
        problem = "not a number " + expected(d);
        return std::nullopt;
      }
      if (v < d.fmin || v > d.fmax) {
        problem = "out of range " + expected(d);
        return std::nullopt;
      }
      return KeyValue{v};
    }
    case KeyType::boolean: {
      if (text == "true" || text == "yes" || text == "on" || text == "1") return KeyValue{true};
      if (text == "false" || text == "no" || text == "off" || text == "0") return KeyValue{false};
      problem = "not a boolean (expected true or false)";
      return std::nullopt;
    }
    case KeyType::string: return KeyValue{std::string(text)};
    case KeyType::path:
    case KeyType::input_path: {
      auto v = expand_env(text, problem);
      if (!v) return std::nullopt;
      return KeyValue{std::move(*v)};
    }
    case KeyType::choice: {
      for (std::string_view c : d.choices)
        if (c == text) return KeyValue{std::string(text)};
      std::string list;
      for (std::string_view c : d.choices) list += (list.empty() ? "" : ", ") + std::string(c);
      problem = "not a valid choice (expected one of " + list + ")";
      const std::string near = closest_match(text, d.choices);
      if (!near.empty()) problem += "; did you mean '" + near + "'?";
      return std::nullopt;
    }
    case KeyType::int_list: {
      std::vector<std::int64_t> out;
      if (trim_blanks(text).empty()) return KeyValue{out};
      std::string_view rest = text;
      while (true) {
        const auto comma = rest.find(',');
        const std::string_view item = trim_blanks(rest.substr(0, comma));
        const auto v = parse_int(item);
        if (!v) {
          problem = "'" + std::string(item) + "' is not an integer " + expected(d);
          return std::nullopt;
        }
        if (!int_in_range(d, *v)) {
          problem = std::to_string(*v) + " is out of range " + expected(d);
          return std::nullopt;
        }
        out.push_back(*v);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      return KeyValue{out};
    }
  }
  R1_FAIL(internal, "key ", d.full_name(), " has no parser for its type");
}

std::string format_deck_value(const KeyValue& v) {
  struct Format {
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double x) const {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, x);
      return std::string(buf, r.ptr);
    }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::int64_t>& l) const {
      std::string out;
      for (std::int64_t i : l) out += (out.empty() ? "" : ", ") + std::to_string(i);
      return out;
    }
  };
  return std::visit(Format{}, v);
}

}  // namespace r1

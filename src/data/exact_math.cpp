#include "data/exact_math.hpp"

#include <cctype>
#include <numeric>
#include <utility>

namespace r1 {

std::optional<Rational> Rational::make(std::int64_t num, std::int64_t den) {
  if (den == 0 || num == INT64_MIN || den == INT64_MIN) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const std::int64_t g = std::gcd(num, den);
  return Rational{num / g, den / g};
}

bool Rational::less_than(const Rational& o) const {
  return static_cast<__int128>(num) * o.den < static_cast<__int128>(o.num) * den;
}

std::string Rational::str() const { return den == 1 ? std::to_string(num) : std::to_string(num) + "/" + std::to_string(den); }

std::optional<Rational> apply(char op, Rational a, Rational b) {
  __int128 n = 0, d = 1;
  switch (op) {
    case '+': n = static_cast<__int128>(a.num) * b.den + static_cast<__int128>(b.num) * a.den; d = static_cast<__int128>(a.den) * b.den; break;
    case '-': n = static_cast<__int128>(a.num) * b.den - static_cast<__int128>(b.num) * a.den; d = static_cast<__int128>(a.den) * b.den; break;
    case '*': n = static_cast<__int128>(a.num) * b.num; d = static_cast<__int128>(a.den) * b.den; break;
    case '/': n = static_cast<__int128>(a.num) * b.den; d = static_cast<__int128>(a.den) * b.num; break;
    default: return std::nullopt;
  }
  if (d == 0) return std::nullopt;
  __int128 g = n < 0 ? -n : n, h = d < 0 ? -d : d;
  while (h != 0) g = std::exchange(h, g % h);
  if (g > 1) {
    n /= g;
    d /= g;
  }
  if (n > INT64_MAX || n < -INT64_MAX || d > INT64_MAX || d < -INT64_MAX) return std::nullopt;
  return Rational::make(static_cast<std::int64_t>(n), static_cast<std::int64_t>(d));
}

namespace {

std::optional<std::int64_t> parse_digits(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// "1,234,567" -> "1234567"; nullopt unless every group after the first has three digits.
std::optional<std::string> strip_thousands(std::string_view s) {
  if (s.find(',') == std::string_view::npos) return std::string(s);
  std::string out;
  std::size_t group = 0, groups = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ',' || s[i] == '.') {
      if ((groups == 0 && (group == 0 || group > 3)) || (groups > 0 && group != 3)) return std::nullopt;
      if (i < s.size() && s[i] == '.') return out + std::string(s.substr(i));
      ++groups;
      group = 0;
    } else {
      out += s[i];
      ++group;
    }
  }
  return out;
}

std::optional<Rational> parse_unsigned(std::string_view s) {
  const auto dot = s.find('.');
  if (dot == std::string_view::npos) {
    const auto v = parse_digits(s);
    return v ? Rational::make(*v, 1) : std::nullopt;
  }
  const std::string_view whole = s.substr(0, dot), frac = s.substr(dot + 1);
  if (frac.empty() || frac.size() > 17) return std::nullopt;
  const auto w = whole.empty() ? std::optional<std::int64_t>(0) : parse_digits(whole);
  const auto f = parse_digits(frac);
  if (!w || !f) return std::nullopt;
  std::int64_t scale = 1;
  for (std::size_t i = 0; i < frac.size(); ++i) scale *= 10;
  const auto a = Rational::make(*w, 1), b = Rational::make(*f, scale);
  return apply('+', *a, *b);
}

}  // namespace

std::optional<Rational> parse_number(std::string_view text) {
  std::string s;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  if (!s.empty() && s.back() == '.') s.pop_back();
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  std::optional<Rational> v;
  for (std::string_view frac : {"\\frac{", "\\dfrac{", "\\tfrac{"}) {
    if (!s.starts_with(frac) || s.back() != '}') continue;
    const std::string body = s.substr(frac.size(), s.size() - frac.size() - 1);  // "a}{b"
    const auto mid = body.find("}{");
    if (mid == std::string::npos) return std::nullopt;
    const auto a = parse_number(body.substr(0, mid)), b = parse_number(body.substr(mid + 2));
    v = (a && b) ? apply('/', *a, *b) : std::nullopt;
    return v && negative ? apply('-', Rational{}, *v) : v;
  }
  if (const auto slash = s.find('/'); slash != std::string::npos) {
    const auto a = parse_number(s.substr(0, slash)), b = parse_number(s.substr(slash + 1));
    v = (a && b) ? apply('/', *a, *b) : std::nullopt;
  } else if (const auto plain = strip_thousands(s)) {
    v = parse_unsigned(*plain);
  }
  return v && negative ? apply('-', Rational{}, *v) : v;
}

namespace {

// Recursive descent: expr = term (('+'|'-') term)*; term = factor (('*'|'/') factor)*;
// factor = '-' factor | number | '(' expr ')'.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  std::optional<Evaluated> run() {
    auto v = expr();
    skip();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return Evaluated{*v, numbers_};
  }

 private:
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  std::optional<Rational> expr() {
    auto v = term();
    while (v) {
      if (eat('+')) v = combine('+', v, term());
      else if (eat('-')) v = combine('-', v, term());
      else break;
    }
    return v;
  }
  std::optional<Rational> term() {
    auto v = factor();
    while (v) {
      if (eat('*')) v = combine('*', v, factor());
      else if (eat('/')) v = combine('/', v, factor());
      else break;
    }
    return v;
  }
  std::optional<Rational> factor() {
    if (++depth_ > 200) return std::nullopt;
    std::optional<Rational> v;
    if (eat('-')) {
      v = combine('-', Rational{}, factor());
    } else if (eat('(')) {
      v = expr();
      if (!eat(')')) v.reset();
    } else {
      skip();
      const std::size_t start = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (const auto d = parse_digits(s_.substr(start, pos_ - start))) {
        numbers_.push_back(*d);
        v = Rational{*d, 1};
      }
    }
    --depth_;
    return v;
  }
  static std::optional<Rational> combine(char op, std::optional<Rational> a, std::optional<Rational> b) {
    return a && b ? apply(op, *a, *b) : std::nullopt;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  std::vector<std::int64_t> numbers_;
};

}  // namespace

std::optional<Evaluated> evaluate_expression(std::string_view text) { return Parser(text).run(); }

}  // namespace r1

#include "rl/math_expr.hpp"

#include <cctype>
#include <cmath>
#include <numbers>

#include "rl/math_value.hpp"

namespace r1 {
namespace {

// Recursive descent over normalised LaTeX, evaluating as it goes:
//   sum = product (('+'|'-') product)*      product = unary (('*'|'/'|implicit) unary)*
//   unary = ('-'|'+') unary | postfix        postfix = atom ('^' exponent | '!' | '%')*
class ExprParser {
 public:
  explicit ExprParser(std::string_view s) : s_(s) {}

  std::optional<MathValue> parse_all() {
    auto v = sum();
    skip();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  char peek() {
    skip();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_digits() {
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }

  std::optional<MathValue> sum() {
    auto v = product();
    while (v) {
      if (eat('+')) v = both(v, product(), math::add);
      else if (eat('-')) v = both(v, product(), math::sub);
      else break;
    }
    return v;
  }

  std::optional<MathValue> product() {
    auto v = unary();
    while (v) {
      if (eat('*')) v = both(v, unary(), math::mul);
      else if (eat('/') || eat(':')) v = both(v, unary(), math::div);  // "1:4" is the ratio 1/4, as math-verify reads it
      else if (starts_atom()) v = both(v, postfix(), math::mul);
      else break;
    }
    return v;
  }

  std::optional<MathValue> unary() {
    if (++depth_ > 100) return std::nullopt;
    std::optional<MathValue> v;
    if (eat('-')) {
      v = unary();
      if (v) v = math::neg(*v);
    } else if (eat('+')) {
      v = unary();
    } else {
      v = postfix();
    }
    --depth_;
    return v;
  }

  bool starts_atom() {
    const char c = peek();
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '(' || c == '{' || c == '.') return true;
    if (c != '\\') return false;
    return !(s_.substr(pos_, 3) == "\\le" || s_.substr(pos_, 3) == "\\ge" || s_.substr(pos_, 3) == "\\ne" ||
             s_.substr(pos_, 2) == "\\}" || s_.substr(pos_, 3) == "\\pm" || s_.substr(pos_, 3) == "\\mp");
  }

  std::optional<MathValue> postfix() {
    auto v = atom();
    while (v) {
      if (eat('^')) {
        v = both(v, exponent(), math::power);
      } else if (eat('!')) {
        v = math::factorial(*v);
      } else if (eat('%')) {
        const auto of = v->exact;
        v = math::div(*v, math::rational(Rational{100, 1}, false));
        v->percent_of = of;
      } else {
        break;
      }
    }
    return v;
  }

  // The argument of ^, \frac12 or \sqrt2: a braced group, else one character or one command.
  std::optional<MathValue> exponent() {
    if (peek() == '{') return atom();
    if (std::isdigit(static_cast<unsigned char>(peek()))) return math::rational(Rational{s_[pos_++] - '0', 1}, false);
    if (eat('-')) {
      const auto v = exponent();
      return v ? std::optional<MathValue>(math::neg(*v)) : std::nullopt;
    }
    return atom();
  }

  std::optional<MathValue> group(char open, char close) {
    if (!eat(open)) return std::nullopt;
    auto v = sum();
    if (!eat(close)) return std::nullopt;
    return v;
  }

  std::optional<MathValue> number() {
    skip();
    const std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.')) ++pos_;
    const std::string_view text = s_.substr(start, pos_ - start);
    if (text.find('.') != text.rfind('.') || text == ".") return std::nullopt;
    const auto r = parse_number(text);
    if (!r) return std::nullopt;
    auto v = math::rational(*r, text.find('.') != std::string_view::npos);
    if (!v.has_float && v.exact->den == 1) return mixed_number(v);
    return v;
  }

  // "2\frac{1}{3}" and "2 1/3": an integer, then a fraction of integers, is their sum.
  MathValue mixed_number(const MathValue& whole) {
    const std::size_t save = pos_;
    skip();
    const bool spaced = pos_ > save;
    std::optional<MathValue> part;
    if (s_.substr(pos_, 5) == "\\frac") {
      part = command();
    } else if (spaced && pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      const std::size_t at = pos_;
      skip_digits();
      if (eat('/') && pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        skip_digits();
        if (const auto r = parse_number(s_.substr(at, pos_ - at))) part = math::rational(*r, false);
      }
    }
    const bool proper = part && part->exact && part->exact->num > 0 && part->exact->num < part->exact->den &&
                        !part->has_float && (pos_ >= s_.size() || !std::isalnum(static_cast<unsigned char>(s_[pos_])));
    if (!proper) {
      pos_ = save;
      return whole;
    }
    return math::add(whole, *part);
  }

  std::optional<MathValue> atom() {
    if (++depth_ > 100) return std::nullopt;  // "\\sqrt\\sqrt..." nests through atoms, not unary()
    auto v = plain_atom();
    --depth_;
    return v;
  }

  std::optional<MathValue> plain_atom() {
    const char c = peek();
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    if (std::isalpha(static_cast<unsigned char>(c))) return letter(std::string(1, static_cast<char>(std::tolower(s_[pos_++]))));
    if (c == '(') return group('(', ')');
    if (c == '{') return group('{', '}');
    if (c == '[') return group('[', ']');
    if (c == '\\') return command();
    return std::nullopt;
  }

  // A variable, with a subscript when one follows: x_1, a_{n}.
  std::optional<MathValue> letter(std::string name) {
    if (pos_ < s_.size() && s_[pos_] == '_') {
      ++pos_;
      const std::size_t start = pos_;
      if (pos_ < s_.size() && s_[pos_] == '{') {
        const auto close = s_.find('}', pos_);
        if (close == std::string_view::npos) return std::nullopt;
        pos_ = close + 1;
      } else if (pos_ < s_.size()) {
        ++pos_;
      }
      name += "_" + std::string(s_.substr(start, pos_ - start));
    }
    return math::variable(name);
  }

  std::optional<MathValue> command() {
    skip();
    const std::size_t start = ++pos_;
    while (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    const std::string name(s_.substr(start, pos_ - start));
    if (name == "frac") {
      const auto num = exponent();  // two statements: the numerator is read first
      return both(num, exponent(), math::div);
    }
    if (name == "sqrt") {
      int n = 2;
      if (eat('[')) {
        const auto index = sum();
        if (!index || !index->exact || index->exact->den != 1 || index->exact->num < 2 || index->exact->num > 8 || !eat(']'))
          return std::nullopt;
        n = static_cast<int>(index->exact->num);
      }
      const auto v = exponent();
      return v ? std::optional<MathValue>(math::root(*v, n)) : std::nullopt;
    }
    if (name == "binom" || name == "dbinom" || name == "tbinom") {
      const auto n = exponent();  // two statements: n is read first
      return both(n, exponent(), math::binomial);
    }
    if (name == "log" && eat('_')) {  // \log_b x = ln x / ln b
      const auto base = exponent();
      const auto arg = peek() == '(' || peek() == '{' ? atom() : postfix();
      if (!base || !arg) return std::nullopt;
      return math::div(math::function("ln", *arg), math::function("ln", *base));
    }
    if (name == "pi") return math::constant(std::numbers::pi);
    if (name == "infty" || name == "infinity") return math::constant(HUGE_VAL);
    if (math::is_function_name(name)) {
      std::optional<MathValue> power;
      if (eat('^')) power = exponent();
      auto arg = peek() == '(' || peek() == '{' ? atom() : postfix();
      if (!arg) return std::nullopt;
      MathValue v = math::function(name, *arg);
      return power ? math::power(v, *power) : v;
    }
    static const char* kGreek[] = {"alpha", "beta",  "gamma", "delta", "epsilon", "theta", "lambda", "mu",
                                   "sigma", "omega", "phi",   "psi",   "rho",     "tau",   "eta",    "xi"};
    for (const char* g : kGreek)
      if (name == g) return letter(name);
    return std::nullopt;
  }

  template <class F>
  static std::optional<MathValue> both(const std::optional<MathValue>& a, const std::optional<MathValue>& b, F f) {
    if (!a || !b) return std::nullopt;
    return f(*a, *b);
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::optional<MathValue> parse_expression(std::string_view latex) { return ExprParser(latex).parse_all(); }

}  // namespace r1

#include "rl/math_value.hpp"

#include <cmath>
#include <functional>
#include <numbers>

namespace r1::math {
namespace {

// Exact r^n for a small integer n; nullopt on overflow.
std::optional<Rational> exact_power(Rational r, std::int64_t n) {
  if (n < -64 || n > 64) return std::nullopt;
  std::optional<Rational> out = Rational{1, 1};
  for (std::int64_t i = 0; i < (n < 0 ? -n : n) && out; ++i) out = apply('*', *out, r);
  if (out && n < 0) out = apply('/', Rational{1, 1}, *out);
  return out;
}

// The integer n-th root of v >= 0 when v is a perfect n-th power.
std::optional<std::int64_t> integer_root(std::int64_t v, int n) {
  if (v < 0) return std::nullopt;
  const auto guess = static_cast<std::int64_t>(std::llround(std::pow(static_cast<double>(v), 1.0 / n)));
  for (std::int64_t c = std::max<std::int64_t>(0, guess - 1); c <= guess + 1; ++c) {
    __int128 p = 1;
    for (int i = 0; i < n && p <= v; ++i) p *= c;
    if (p == v) return c;
  }
  return std::nullopt;
}

MathValue combine(const MathValue& a, const MathValue& b, const std::function<double(double, double)>& f) {
  MathValue out;
  for (int i = 0; i < kMathPoints; ++i) out.at[i] = f(a.at[i], b.at[i]);
  out.has_float = a.has_float || b.has_float;
  out.has_variable = a.has_variable || b.has_variable;
  return out;
}

MathValue exact_op(char op, const MathValue& a, const MathValue& b, const std::function<double(double, double)>& f) {
  MathValue out = combine(a, b, f);
  if (a.exact && b.exact) out.exact = apply(op, *a.exact, *b.exact);
  return out;
}

}  // namespace

MathValue constant(double v) {
  MathValue out;
  out.at.fill(v);
  return out;
}

MathValue rational(Rational r, bool from_decimal) {
  MathValue out = constant(static_cast<double>(r.num) / static_cast<double>(r.den));
  out.exact = r;
  out.has_float = from_decimal;
  return out;
}

MathValue variable(std::string_view name) {
  // Values in [0.6, 2.6): positive, so that roots and logarithms of sums of variables stay real, and away from
  // the small integers where distinct expressions often meet.
  MathValue out;
  const std::size_t h = std::hash<std::string_view>{}(name);
  for (int i = 0; i < kMathPoints; ++i) {
    const std::size_t mixed = (h ^ (0x9E3779B97F4A7C15ull * static_cast<std::size_t>(i + 1))) * 0xBF58476D1CE4E5B9ull;
    out.at[i] = 0.6 + static_cast<double>(mixed >> 11) / static_cast<double>(1ull << 53) * 2.0;
  }
  out.has_variable = true;
  return out;
}

MathValue add(const MathValue& a, const MathValue& b) { return exact_op('+', a, b, std::plus<double>()); }
MathValue sub(const MathValue& a, const MathValue& b) { return exact_op('-', a, b, std::minus<double>()); }
MathValue mul(const MathValue& a, const MathValue& b) {
  MathValue out = exact_op('*', a, b, std::multiplies<double>());
  if (!out.exact && ((a.exact && a.exact->num == 0 && !b.has_variable) || (b.exact && b.exact->num == 0 && !a.has_variable)))
    out.exact = Rational{0, 1};  // 0 * pi is 0
  return out;
}
MathValue div(const MathValue& a, const MathValue& b) { return exact_op('/', a, b, std::divides<double>()); }
MathValue neg(const MathValue& a) { return sub(rational(Rational{0, 1}, false), a); }

MathValue power(const MathValue& base, const MathValue& e) {
  MathValue out = combine(base, e, [](double x, double y) { return std::pow(x, y); });
  if (!base.exact || !e.exact) return out;
  if (e.exact->den == 1) {
    out.exact = exact_power(*base.exact, e.exact->num);
  } else if (e.exact->den <= 8 && e.exact->num > 0) {
    const MathValue r = root(base, static_cast<int>(e.exact->den));
    if (r.exact) out.exact = exact_power(*r.exact, e.exact->num);
  }
  return out;
}

MathValue root(const MathValue& a, int n) {
  MathValue out = a;
  out.percent_of.reset();
  for (double& v : out.at) v = (n % 2 == 1 && v < 0) ? -std::pow(-v, 1.0 / n) : std::pow(v, 1.0 / n);
  out.exact.reset();
  if (a.exact) {
    const bool odd_negative = n % 2 == 1 && a.exact->num < 0;
    const auto num = integer_root(odd_negative ? -a.exact->num : a.exact->num, n), den = integer_root(a.exact->den, n);
    if (num && den) out.exact = Rational::make(odd_negative ? -*num : *num, *den);
  }
  return out;
}

MathValue factorial(const MathValue& a) {
  MathValue out = a;
  out.percent_of.reset();
  for (double& v : out.at) v = std::tgamma(v + 1);
  if (a.exact && a.exact->den == 1 && a.exact->num >= 0 && a.exact->num <= 20) {
    std::int64_t f = 1;
    for (std::int64_t i = 2; i <= a.exact->num; ++i) f *= i;
    out.exact = Rational{f, 1};
  } else {
    out.exact.reset();
  }
  return out;
}

MathValue binomial(const MathValue& n, const MathValue& k) {
  MathValue out = combine(n, k, [](double a, double b) { return std::tgamma(a + 1) / (std::tgamma(b + 1) * std::tgamma(a - b + 1)); });
  if (n.exact && k.exact && n.exact->den == 1 && k.exact->den == 1 && k.exact->num >= 0 && k.exact->num <= n.exact->num &&
      n.exact->num <= 60) {
    __int128 c = 1;
    for (std::int64_t i = 1; i <= k.exact->num; ++i) c = c * (n.exact->num - k.exact->num + i) / i;
    out.exact = Rational{static_cast<std::int64_t>(c), 1};
  }
  return out;
}

bool is_function_name(std::string_view name) {
  for (std::string_view f : {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "ln", "log", "exp"})
    if (name == f) return true;
  return false;
}

MathValue function(std::string_view name, const MathValue& a) {
  double (*f)(double) = nullptr;
  if (name == "sin") f = [](double x) { return std::sin(x); };
  else if (name == "cos") f = [](double x) { return std::cos(x); };
  else if (name == "tan") f = [](double x) { return std::tan(x); };
  else if (name == "cot") f = [](double x) { return 1 / std::tan(x); };
  else if (name == "sec") f = [](double x) { return 1 / std::cos(x); };
  else if (name == "csc") f = [](double x) { return 1 / std::sin(x); };
  else if (name == "arcsin") f = [](double x) { return std::asin(x); };
  else if (name == "arccos") f = [](double x) { return std::acos(x); };
  else if (name == "arctan") f = [](double x) { return std::atan(x); };
  else if (name == "ln" || name == "log") f = [](double x) { return std::log(x); };
  else f = [](double x) { return std::exp(x); };
  MathValue out = a;
  out.percent_of.reset();
  out.exact.reset();
  for (double& v : out.at) v = f(v);
  return out;
}

}  // namespace r1::math

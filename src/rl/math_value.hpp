// Arithmetic on MathValue (exact where rational, else by value at the fixed points) for the answer parser.
#pragma once
#include <string_view>

#include "rl/math_parse.hpp"

namespace r1::math {

MathValue constant(double v);              // pi, infinity: inexact, the same at every point
MathValue rational(Rational r, bool from_decimal);
MathValue variable(std::string_view name);  // a letter: its own value at each point

MathValue add(const MathValue& a, const MathValue& b);
MathValue sub(const MathValue& a, const MathValue& b);
MathValue mul(const MathValue& a, const MathValue& b);
MathValue div(const MathValue& a, const MathValue& b);
MathValue neg(const MathValue& a);
MathValue power(const MathValue& base, const MathValue& exponent);
MathValue root(const MathValue& a, int n);  // the n-th root; exact when a is a rational n-th power
MathValue factorial(const MathValue& a);
MathValue binomial(const MathValue& n, const MathValue& k);  // exact for integers 0 <= k <= n <= 60
MathValue function(std::string_view name, const MathValue& a);  // sin cos tan ln log exp ...; name must be known
bool is_function_name(std::string_view name);

}  // namespace r1::math

// The expression parser of final answers: normalised LaTeX (rl/math_parse.hpp) to its MathValue.
#pragma once
#include <optional>
#include <string_view>

#include "rl/math_parse.hpp"

namespace r1 {

// + - * / : (ratio), implicit products, ^, !, %, \frac (and \frac12), mixed numbers, \sqrt[n]{}, \binom, \pi,
// \infty, sin cos tan ln log (\log_b) exp, letters with subscripts and Greek letters as variables; nullopt for
// anything else (the answer is then read as text).
std::optional<MathValue> parse_expression(std::string_view latex);

}  // namespace r1

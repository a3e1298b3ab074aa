// Whether a predicted final answer of a MATH / GSM8K problem equals the reference answer, with the verdicts of
// PyPI math-verify (verify(parse(gold), parse(pred))) as the specification (tests/rl/math_answer_test.cpp).
#pragma once
#include <string_view>

#include "rl/math_parse.hpp"

namespace r1 {

// Both are final answers already extracted (a \boxed{} content, an <answer> body, a GSM8K "#### 42" tail).
// Numbers compare by value (decimals against fractions rounded to 6 places when one side is a decimal,
// "50\%" equal to 50 and to 0.5), expressions by identity (value at fixed points of their letters), an equation
// "x = 3" by its right side against a plain gold, intervals by ends and brackets, sets unordered, tuples in
// order, a bare "a, b" list ("separated by commas") as a set, text case-folded.
bool math_answers_equal(std::string_view pred, std::string_view gold);

// The same on parsed answers (gold first, as math-verify's verify is not symmetric).
bool math_answers_equal(const MathAnswer& gold, const MathAnswer& pred);

}  // namespace r1

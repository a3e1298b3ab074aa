// math_answers_equal: whether a predicted MATH / GSM8K final answer equals the reference, after math-verify.
#pragma once
#include <string_view>

#include "rl/math_parse.hpp"

namespace r1 {

// The specification is PyPI math-verify's verify(parse(gold), parse(pred)) (tests/rl/math_answer_test.cpp).
// Both are final answers already extracted (a \boxed{} content, an <answer> body, a GSM8K "#### 42" tail).
// Numbers compare by value (decimals against fractions rounded to 6 places when one side is a decimal,
// "50\%" equal to 50 and to 0.5), expressions by identity (value at fixed points of their letters), an equation
// "x = 3" by its right side against a plain gold, intervals by ends and brackets, sets unordered, tuples in
// order, a bare "a, b" list ("separated by commas") as a set, inequalities link by link (a gold one in one letter
// also as its interval), matrices cell by cell, text case-folded. docs/grpo.md lists the rules.
bool math_answers_equal(std::string_view pred, std::string_view gold);

// The same on parsed answers (gold first, as math-verify's verify is not symmetric).
bool math_answers_equal(const MathAnswer& gold, const MathAnswer& pred);

}  // namespace r1

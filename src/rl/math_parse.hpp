// MathValue and MathAnswer: a MATH / GSM8K final answer normalised and parsed into a mathematical object.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/exact_math.hpp"

namespace r1 {

// The value of an expression: exact when it is rational, and always its value at kMathPoints fixed
// assignments of its variables (the same assignments for every expression, so that two expressions in
// the same variables that agree at every point are taken as identical, as a polynomial identity test does).
inline constexpr int kMathPoints = 4;
struct MathValue {
  std::optional<Rational> exact;        // set when the value is rational (decimals are read exactly)
  std::array<double, kMathPoints> at{};  // the value at each point; constants are the same at every point
  bool has_float = false;               // a decimal literal ("0.5") took part, as sympy's Float would
  bool has_variable = false;            // a letter took part
  // "X\%" at the top: X itself (value is X/100); math-verify compares 50\% with 50 by X.
  std::optional<Rational> percent_of;
  bool is_number() const { return exact.has_value(); }
  bool is_integer() const { return exact && !has_float && exact->den == 1; }
};

// One link of an inequality, ">" and "\\ge" turned around: lhs op rhs with op "<", "<=" or "!=".
struct MathComparison {
  MathValue lhs, rhs;
  std::string op;
  std::string lhs_letter, rhs_letter;  // the side's variable when it is a bare letter ("x" in x < 3), else empty
};

struct MathAnswer {
  enum class Kind { scalar, text, interval, tuple, set, list, relation, set_union, inequality, matrix };
  Kind kind = Kind::text;
  MathValue value;                   // scalar
  std::vector<MathAnswer> items;     // tuple, set, list (as written), interval (its two ends), set_union (its
                                     // pieces), relation (one: its last right side as an answer of its own),
                                     // matrix (its cells row by row)
  int columns = 0;                   // matrix
  std::vector<MathComparison> comparisons;  // inequality: "1 < x \\le 2" is two
  bool left_open = false, right_open = false;  // interval
  MathValue lhs, rhs;                // relation: the first left side and the last right side of a = b = c, when
  bool sides_are_values = false;     // both are expressions (not "x = (0, 5)")
  bool lhs_is_letter = false;        // relation: "x = 3", an assignment
  std::string text;                  // the normalised answer, case-folded and without spaces
};

MathAnswer scalar_answer(const MathValue& v, std::string text);

// The answer's normal form: LaTeX normalised (spacing, \left \right, \dfrac, units, degrees, thousands commas)
// and parsed into a number or expression, interval, tuple, set, list, union, equation, inequality, matrix or
// text; never fails: what does not parse as mathematics is text.
MathAnswer parse_math_answer(std::string_view answer);

// The normalised LaTeX that parse_math_answer reads (exposed for tests and error messages).
std::string normalize_math_latex(std::string_view answer);

}  // namespace r1

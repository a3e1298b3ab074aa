// Exact arithmetic for verifiable answers: rationals, number parsing (integer, decimal, fraction) and an
// evaluator of + - * / expressions with parentheses (countdown answers, arithmetic checks).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

// num/den in lowest terms, den > 0. Arithmetic returns nullopt on 64-bit overflow or division by zero.
struct Rational {
  std::int64_t num = 0, den = 1;
  static std::optional<Rational> make(std::int64_t num, std::int64_t den);
  bool operator==(const Rational&) const = default;
  bool less_than(const Rational& o) const;
  std::string str() const;  // "7", "-3/4"
};
std::optional<Rational> apply(char op, Rational a, Rational b);  // op in + - * /

// "42", "-3", "1,234" (thousands groups), "2.50", "3/4", "\frac{3}{4}", "\dfrac{-1}{2}", with spaces and one
// trailing period ignored; nullopt for anything else.
std::optional<Rational> parse_number(std::string_view text);

// Value of an expression of non-negative integers, + - * /, unary minus and parentheses, and the numbers it
// uses in order; nullopt on a syntax error, a division by zero or an overflow.
struct Evaluated {
  Rational value;
  std::vector<std::int64_t> numbers;
};
std::optional<Evaluated> evaluate_expression(std::string_view text);

}  // namespace r1

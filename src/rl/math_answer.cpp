#include "rl/math_answer.hpp"

#include <algorithm>
#include <cmath>

#include "rl/math_value.hpp"

namespace r1 {
namespace {

using Kind = MathAnswer::Kind;

// Equal at every point within a relative tolerance (sympy's evalf of a - b to 15 digits, or its simplify, where an
// identity holds); both infinite with one sign counts as equal.
bool close_everywhere(const MathValue& a, const MathValue& b, double tolerance = 1e-9) {
  if (a.exact && b.exact) return *a.exact == *b.exact;
  int compared = 0;
  for (int i = 0; i < kMathPoints; ++i) {
    const double x = a.at[i], y = b.at[i];
    if (std::isnan(x) && std::isnan(y)) continue;
    if (x == y) {
      ++compared;
      continue;
    }
    if (!std::isfinite(x) || !std::isfinite(y)) return false;
    if (std::abs(x - y) > tolerance * std::max({1.0, std::abs(x), std::abs(y)})) return false;
    ++compared;
  }
  return compared > 0;
}

// The integer an integer or an integer percentage ("50\%") stands for, as math-verify compares 50\% with 50.
std::optional<Rational> integer_base(const MathValue& v) {
  if (v.percent_of) return !v.has_float && v.percent_of->den == 1 ? v.percent_of : std::nullopt;
  return v.is_integer() ? v.exact : std::nullopt;
}

double round6(double v) { return std::nearbyint(v * 1e6); }

// sympy_numeric_eq, then exact equality (sympy's simplify(a - b) == 0).
bool values_equal(const MathValue& gold, const MathValue& pred) {
  if (gold.is_number() || pred.is_number()) {
    if (gold.has_float || pred.has_float) {
      // Both rounded to 6 decimals; an exact integer stays an integer there and never equals a float.
      const bool constant = !gold.has_variable && !pred.has_variable;
      if (constant && !gold.is_integer() && !pred.is_integer() && std::isfinite(gold.at[0]) && std::isfinite(pred.at[0]) &&
          round6(gold.at[0]) == round6(pred.at[0]))
        return true;
    } else if (const auto g = integer_base(gold), p = integer_base(pred); g && p) {
      if (*g == *p) return true;
    }
    if (gold.exact && pred.exact) return *gold.exact == *pred.exact;
    // simplify(a - b) of a float and an irrational is a nonzero float; of exact forms (cos(pi/3), 1/2) it is 0,
    // and only rounding error may part them (355/113 is not pi).
    if (gold.exact || pred.exact) return !gold.has_float && !pred.has_float && close_everywhere(gold, pred, 1e-13);
  }
  return close_everywhere(gold, pred);
}

bool is_collection(const MathAnswer& a) {
  return a.kind == Kind::interval || a.kind == Kind::tuple || a.kind == Kind::set || a.kind == Kind::list;
}
bool is_finite_set(const MathAnswer& a) { return a.kind == Kind::set || a.kind == Kind::list; }

// The items of a set without repeats.
std::vector<MathAnswer> distinct(const std::vector<MathAnswer>& items) {
  std::vector<MathAnswer> out;
  for (const auto& item : items)
    if (std::none_of(out.begin(), out.end(), [&](const MathAnswer& o) { return math_answers_equal(o, item); }))
      out.push_back(item);
  return out;
}

// sympy's ordering of set members: numbers by value (an assignment by its right side), then the rest by text.
std::vector<MathAnswer> sorted(std::vector<MathAnswer> items) {
  auto key = [](const MathAnswer& a) {
    const MathValue* v = a.kind == Kind::scalar                                               ? &a.value
                         : a.kind == Kind::relation && a.lhs_is_letter && a.sides_are_values ? &a.rhs
                                                                                              : nullptr;
    const bool number = v && !std::isnan(v->at[0]);  // NaN (sqrt(-1)) would break the sort's ordering
    return std::make_pair(number ? 0 : 1, number ? v->at[0] : 0.0);
  };
  std::stable_sort(items.begin(), items.end(), [&](const MathAnswer& a, const MathAnswer& b) {
    return key(a) != key(b) ? key(a) < key(b) : a.text < b.text;
  });
  return items;
}

bool pairwise(const std::vector<MathAnswer>& gold, const std::vector<MathAnswer>& pred) {
  if (gold.size() != pred.size()) return false;
  for (std::size_t i = 0; i < gold.size(); ++i)
    if (!math_answers_equal(gold[i], pred[i])) return false;
  return true;
}

// Finite sets and tuples item by item: a gold set sorts both sides; a gold tuple keeps the prediction as written.
bool items_equal(const MathAnswer& gold, const MathAnswer& pred) {
  const auto g = is_finite_set(gold) ? distinct(gold.items) : gold.items;
  const auto p = is_finite_set(pred) ? distinct(pred.items) : pred.items;
  if (g.size() != p.size()) return false;
  if (is_finite_set(gold)) return pairwise(sorted(g), sorted(p));
  return pairwise(g, p);
}

MathAnswer ends_as_tuple(MathAnswer interval) {
  interval.kind = Kind::tuple;
  return interval;
}

bool sets_equal(const MathAnswer& gold_in, const MathAnswer& pred_in) {
  auto singleton = [](const MathAnswer& a) {
    if (is_collection(a)) return a;
    MathAnswer set = a;
    set.kind = Kind::set;
    set.items = {a};
    return set;
  };
  const MathAnswer gold = singleton(gold_in), pred = singleton(pred_in);
  if (gold.kind == Kind::interval && pred.kind == Kind::interval)
    return gold.left_open == pred.left_open && gold.right_open == pred.right_open && pairwise(gold.items, pred.items);
  if (is_finite_set(gold) && is_finite_set(pred)) {
    const auto g = distinct(gold.items), p = distinct(pred.items);
    auto within = [](const std::vector<MathAnswer>& xs, const std::vector<MathAnswer>& ys) {
      return std::all_of(xs.begin(), xs.end(), [&](const MathAnswer& x) {
        return std::any_of(ys.begin(), ys.end(), [&](const MathAnswer& y) { return math_answers_equal(x, y); });
      });
    };
    if (within(g, p) && within(p, g)) return true;
  }
  const bool gold_items = gold.kind != Kind::interval, pred_items = pred.kind != Kind::interval;
  if (gold_items && pred_items) return items_equal(gold, pred);
  // An open interval (a, b) against a two-item set or tuple: its ends as a tuple.
  if (!gold_items && gold.left_open && gold.right_open && pred.items.size() == 2) return items_equal(ends_as_tuple(gold), pred);
  if (!pred_items && pred.left_open && pred.right_open && gold.items.size() == 2) return items_equal(gold, ends_as_tuple(pred));
  return false;
}

bool relations_equal(const MathAnswer& gold, const MathAnswer& pred) {
  if (!gold.sides_are_values || !pred.sides_are_values) return false;
  const MathValue g = math::sub(gold.lhs, gold.rhs), p = math::sub(pred.lhs, pred.rhs);
  return close_everywhere(g, p) || close_everywhere(g, math::neg(p));
}

// Unions of intervals and sets: the same pieces in any order.
bool unions_equal(const MathAnswer& gold, const MathAnswer& pred) {
  if (gold.kind != pred.kind || gold.items.size() != pred.items.size()) return false;
  std::vector<bool> used(pred.items.size(), false);
  for (const auto& g : gold.items) {
    std::size_t i = 0;
    while (i < pred.items.size() && (used[i] || !math_answers_equal(g, pred.items[i]))) ++i;
    if (i == pred.items.size()) return false;
    used[i] = true;
  }
  return true;
}

// x < 3 as (-inf, 3), 1 < x <= 2 as (1, 2]: links between one letter and constants; nullopt otherwise (x != 3).
std::optional<MathAnswer> as_interval(const MathAnswer& inequality) {
  MathAnswer lo = scalar_answer(math::constant(-HUGE_VAL), ""), hi = scalar_answer(math::constant(HUGE_VAL), "");
  bool lo_open = true, hi_open = true;
  std::string letter;
  for (const auto& c : inequality.comparisons) {
    const bool upper = !c.lhs_letter.empty() && c.rhs.is_number(), lower = !c.rhs_letter.empty() && c.lhs.is_number();
    const std::string& name = upper ? c.lhs_letter : c.rhs_letter;
    if (c.op == "!=" || (!upper && !lower) || (!letter.empty() && name != letter)) return std::nullopt;
    letter = name;
    (upper ? hi : lo) = scalar_answer(upper ? c.rhs : c.lhs, "");
    (upper ? hi_open : lo_open) = c.op == "<";
  }
  MathAnswer a = inequality;
  a.kind = Kind::interval;
  a.items = {lo, hi};
  a.left_open = lo_open || std::isinf(lo.value.at[0]);
  a.right_open = hi_open || std::isinf(hi.value.at[0]);
  return a;
}

// Inequalities link by link (same operator, same lhs - rhs); a gold inequality in one letter also equals the
// interval it describes (math-verify turns the gold, never the prediction, into a set).
bool inequalities_equal(const MathAnswer& gold, const MathAnswer& pred) {
  if (gold.kind != Kind::inequality) return false;
  if (pred.kind != Kind::inequality) {
    const auto interval = as_interval(gold);
    return interval && is_collection(pred) && sets_equal(*interval, pred);
  }
  if (gold.comparisons.size() != pred.comparisons.size()) return false;
  for (std::size_t i = 0; i < gold.comparisons.size(); ++i) {
    const MathComparison &g = gold.comparisons[i], &p = pred.comparisons[i];
    const MathValue dg = math::sub(g.lhs, g.rhs), dp = math::sub(p.lhs, p.rhs);
    if (g.op != p.op || !close_everywhere(dg, dp)) return false;  // math-verify: 2 != x is not x != 2
  }
  return true;
}

}  // namespace

bool math_answers_equal(const MathAnswer& gold_in, const MathAnswer& pred_in) {
  if (!gold_in.text.empty() && gold_in.text == pred_in.text) return true;
  MathAnswer gold = gold_in, pred = pred_in;
  // An equation answers a plain gold by its right side; an assignment gold "x = 3" is met by a plain 3.
  if (pred.kind == Kind::relation && gold.kind != Kind::relation) pred = pred.items.front();
  else if (gold.kind == Kind::relation && gold.lhs_is_letter && pred.kind != Kind::relation) gold = gold.items.front();
  if (gold.kind == Kind::relation && pred.kind == Kind::relation) return relations_equal(gold, pred);
  if (gold.kind == Kind::inequality || pred.kind == Kind::inequality) return inequalities_equal(gold, pred);
  if (gold.kind == Kind::matrix || pred.kind == Kind::matrix)
    return gold.kind == pred.kind && gold.columns == pred.columns && pairwise(gold.items, pred.items);
  if (gold.kind == Kind::set_union || pred.kind == Kind::set_union) return unions_equal(gold, pred);
  if (is_collection(gold) || is_collection(pred)) return sets_equal(gold, pred);
  if (gold.kind == Kind::scalar && pred.kind == Kind::scalar) return values_equal(gold.value, pred.value);
  return false;
}

bool math_answers_equal(std::string_view pred, std::string_view gold) {
  return math_answers_equal(parse_math_answer(gold), parse_math_answer(pred));
}

}  // namespace r1

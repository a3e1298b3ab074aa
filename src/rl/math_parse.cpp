#include "rl/math_parse.hpp"

#include <cctype>
#include <cmath>

#include "rl/math_expr.hpp"

namespace r1 {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Whether word, or word without a plural "s" / "es", is in list (case-folded).
bool in_list(std::string word, std::initializer_list<const char*> list) {
  word = lower(trim(word));
  for (const char* w : list)
    if (word == w || (word.ends_with('s') && word.substr(0, word.size() - 1) == w) ||
        (word.ends_with("es") && word.substr(0, word.size() - 2) == w))
      return true;
  return false;
}

// A unit word after a number ("5 cm", "36 hours", "5 apples"): the ones math-verify drops too (it keeps
// "dollars", "people" and "points", so "18 dollars" is no number there).
bool is_plain_unit(const std::string& word) {
  return in_list(word, {"cm", "m", "km", "mm", "inch", "ft", "feet", "foot", "yard", "mile", "meter", "metre", "g", "gm", "kg",
                        "lb", "pound", "gallon", "liter", "litre", "l", "sec", "second", "min", "minute", "hr", "hour", "day",
                        "month", "year", "cent", "degree", "deg", "unit", "square", "sq", "cubic", "mph", "apple", "student",
                        "men", "women", "mark", "coin", "toy"});
}

// Any unit, or what was counted, inside \text{...}: math-verify drops such text after a number.
bool is_unit(const std::string& word) {
  return is_plain_unit(word) || in_list(word, {"dollar", "people", "person", "point", "time", "ounce", "oz", "ton", "ml", "cup",
                                               "week", "centimeter", "kilometer", "millimeter", "gram", "kilogram", "km/h"});
}

bool all_units(const std::string& words) {
  for (std::size_t w = 0; w < words.size();) {
    const auto space = words.find(' ', w);
    const std::string word = words.substr(w, space == std::string::npos ? std::string::npos : space - w);
    if (!word.empty() && !is_unit(word)) return false;
    w = space == std::string::npos ? words.size() : space + 1;
  }
  return true;
}

// The content of the \text{...} that s ends with, if it does.
std::optional<std::string> trailing_text(const std::string& s) {
  const auto at = s.rfind("\\text{");
  if (s.empty() || s.back() != '}' || at == std::string::npos || s.find('}', at) + 1 != s.size()) return std::nullopt;
  return s.substr(at + 6, s.size() - at - 7);
}

// A trailing \text{...} whose words are all units, with a following ^2 or ^3, after a number or an expression
// (not after other text, as "\text{(E)} \text{ units}" stays text): "5 \text{ cm}^2", "12 \text{ square feet}".
void drop_text_units(std::string& s) {
  replace_all(s, "\\text{ }", "");
  replace_all(s, "\\text{}", "");
  for (int round = 0; round < 3; ++round) {
    std::string t = trim(s);
    for (std::string_view power : {"^2", "^3", "^{2}", "^{3}"})
      if (t.ends_with(power)) t = t.substr(0, t.size() - power.size());
    const auto unit = trailing_text(t);
    if (!unit || !all_units(*unit)) return;
    const std::string before = trim(t.substr(0, t.rfind("\\text{")));
    const auto text_before = trailing_text(before);
    if (before.empty() || (text_before && !all_units(*text_before))) return;
    s = before;
  }
}

// "5 cm", "18 dollars", "12 square feet": trailing unit words after a number or a closing brace.
void drop_trailing_units(std::string& s) {
  for (int round = 0; round < 3; ++round) {
    std::string t = trim(s);
    std::size_t end = t.size();
    if (end >= 2 && t[end - 2] == '^' && (t[end - 1] == '2' || t[end - 1] == '3')) end -= 2;
    std::size_t start = end;
    while (start > 0 && std::isalpha(static_cast<unsigned char>(t[start - 1]))) --start;
    if (start == end || start == 0) return;
    const char before = t[start - 1];
    if (before != ' ' && before != '}' && !std::isdigit(static_cast<unsigned char>(before))) return;
    if (!is_plain_unit(t.substr(start, end - start)) || trim(t.substr(0, start)).empty()) return;
    s = trim(t.substr(0, start));
  }
}

// "1,234,567" -> "1234567" and "-1,234.50" -> "-1234.50" when the whole answer is such a number (1-3 digits, then
// groups of three): within an expression or a tuple the commas separate items, as math-verify reads them.
void drop_thousands_commas(std::string& s) {
  const std::size_t sign = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  const std::size_t point = std::min(s.find('.'), s.size());
  std::size_t digits = 0, groups = 0;
  for (std::size_t i = sign; i < point; ++i) {
    if (s[i] == ',') {
      if ((groups == 0 && (digits == 0 || digits > 3)) || (groups > 0 && digits != 3)) return;
      ++groups;
      digits = 0;
    } else if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++digits;
    } else {
      return;
    }
  }
  for (std::size_t i = point + 1; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return;
  if (groups == 0 || digits != 3) return;
  std::erase(s, ',');
}

}  // namespace

std::string normalize_math_latex(std::string_view answer) {
  std::string s = trim(answer);
  for (auto [from, to] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"\\\\", "\x02"}, {"\\$", ""}, {"$", ""}, {"\\(", ""}, {"\\)", ""}, {"\\[", ""}, {"\\]", ""}, {"\\displaystyle", ""},
           {"\\left.", ""}, {"\\right.", ""}, {"\\left", ""}, {"\\right", ""}, {"\\!", ""}, {"\\,", " "}, {"\\;", " "},
           {"\\:", " "}, {"\\qquad", " "}, {"\\quad", " "}, {"\\ ", " "}, {"~", " "}, {"{,}", ","}, {"\\dfrac", "\\frac"},
           {"\\tfrac", "\\frac"}, {"\\cfrac", "\\frac"}, {"\\textbf{", "\\text{"}, {"\\textrm{", "\\text{"},
           {"\\textit{", "\\text{"}, {"\\textnormal{", "\\text{"}, {"\\mathrm{", "\\text{"}, {"\\mathbf{", "\\text{"},
           {"\\mathit{", "\\text{"}, {"\\mbox{", "\\text{"}, {"^{\\circ}", ""}, {"^\\circ", ""}, {"\\circ", ""},
           {"\\degree", ""}, {"\xC2\xB0", ""}, {"\\%", "%"}, {" percent", "%"}, {"\\cdot", "*"}, {"\\times", "*"}, {"\\ast", "*"},
           {"\\div", "/"}, {"\xE2\x88\x92", "-"}, {";", ","}, {"\\leqslant", "\\le"}, {"\\geqslant", "\\ge"}, {"\\leq", "\\le"},
           {"\\geq", "\\ge"}, {"\\neq", "\\ne"}, {"\\lt", "<"}, {"\\gt", ">"}, {"<=", "\\le"}, {">=", "\\ge"},
           {"\xE2\x89\xA4", "\\le"}, {"\xE2\x89\xA5", "\\ge"}, {"\\lbrace", "\\{"}, {"\\rbrace", "\\}"},
           {"\n", " "}, {"\t", " "}})
    replace_all(s, from, to);
  for (auto at = s.find("\\in"); at != std::string::npos; at = s.find("\\in", at + 1))  // x \\in S reads as x = S
    if (at + 3 >= s.size() || !std::isalpha(static_cast<unsigned char>(s[at + 3]))) s.replace(at, 3, "=");
  drop_text_units(s);
  s = trim(s);
  while (!s.empty() && s.back() == '.') s = trim(s.substr(0, s.size() - 1));
  drop_trailing_units(s);
  drop_thousands_commas(s);
  return trim(s);
}

namespace {

// The pieces of s between top-level separators (outside () [] {}): separator(i) is the length of the one that
// starts at i, or 0; the separators found are appended to found.
template <class Separator>
std::vector<std::string> split_top_by(std::string_view s, Separator separator, std::vector<std::string>* found = nullptr) {
  std::vector<std::string> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
    else if (s[i] == ')' || s[i] == ']' || s[i] == '}') --depth;
    const std::size_t length = depth == 0 ? separator(i) : 0;
    if (length == 0) continue;
    parts.push_back(trim(s.substr(start, i - start)));
    if (found) found->emplace_back(s.substr(i, length));
    start = i + length;
    i = start - 1;
  }
  parts.push_back(trim(s.substr(start)));
  return parts;
}

std::vector<std::string> split_top(std::string_view s, char separator) {
  return split_top_by(s, [&](std::size_t i) -> std::size_t { return s[i] == separator ? 1 : 0; });
}

// The pieces of a union "A \\cup B" (top level).
std::vector<std::string> split_cup(const std::string& s) {
  std::string marked = s;
  replace_all(marked, "\\cup", "\x01");
  return split_top(marked, '\x01');
}

// Whether the bracket opening s closes only at its last character ("(1,2]" yes, "(1)(2)" no).
bool closes_at_end(std::string_view s) {
  if (s.size() < 2 || (s[0] != '(' && s[0] != '[' && s[0] != '{')) return false;
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
    else if ((s[i] == ')' || s[i] == ']' || s[i] == '}') && --depth == 0) return i + 1 == s.size();
  }
  return false;
}
bool wrapped(std::string_view s) { return s.front() != '{' && closes_at_end(s); }

// Case-folded text without spaces and with \text{...} unwrapped (other braces kept, so that \sqrt{2}x and
// \sqrt{2x} stay apart), and without parentheses around it: what a text answer is compared by.
std::string fold(std::string s) {
  for (auto at = s.find("\\text{"); at != std::string::npos; at = s.find("\\text{", at)) {
    int depth = 0;
    std::size_t end = at + 5;
    while (end < s.size() && !(s[end] == '}' && --depth == 0)) depth += s[end++] == '{';
    if (end >= s.size()) break;
    s = s.substr(0, at) + s.substr(at + 6, end - at - 6) + s.substr(end + 1);
  }
  std::string out;
  for (unsigned char c : s)
    if (c != ' ') out += static_cast<char>(std::tolower(c));
  if (out.size() > 2 && out.front() == '(' && out.back() == ')' && out.find(',') == std::string::npos) return out.substr(1, out.size() - 2);
  return out;
}

bool is_letter_name(const std::string& s) {
  if (s.size() == 1) return std::isalpha(static_cast<unsigned char>(s[0]));
  return s.size() > 2 && std::isalpha(static_cast<unsigned char>(s[0])) && s[1] == '_';
}

MathAnswer parse_item(std::string s, bool allow_list);

MathAnswer text_answer(std::string text) {
  MathAnswer a;
  a.text = std::move(text);
  return a;
}

MathAnswer items_of(MathAnswer::Kind kind, const std::vector<std::string>& parts, std::string text) {
  MathAnswer a;
  a.kind = kind;
  a.text = std::move(text);
  for (const auto& part : parts) {
    if (part.empty()) return text_answer(a.text);
    a.items.push_back(parse_item(part, false));
  }
  return a;
}

// "(a, b)" is an open interval when a < b are constants, else a pair; brackets "[", "]" make intervals.
MathAnswer bracketed(const std::string& s, const std::string& text) {
  const auto parts = split_top(s.substr(1, s.size() - 2), ',');
  MathAnswer a = items_of(MathAnswer::Kind::tuple, parts, text);
  const bool mixed = (s.front() == '(') != (s.back() == ')');
  if (a.kind == MathAnswer::Kind::tuple && a.items.size() != 2 && mixed) return text_answer(text);  // "[1, 2, 3)"
  if (a.kind != MathAnswer::Kind::tuple || a.items.size() != 2) return a;
  const MathAnswer &lo = a.items[0], &hi = a.items[1];
  if (lo.kind != MathAnswer::Kind::scalar || hi.kind != MathAnswer::Kind::scalar) return a;
  const bool constant = !lo.value.has_variable && !hi.value.has_variable;
  const bool parentheses = s.front() == '(' && s.back() == ')';
  if (parentheses && !(constant && lo.value.at[0] < hi.value.at[0])) return a;
  a.kind = MathAnswer::Kind::interval;
  a.left_open = s.front() == '(' || std::isinf(lo.value.at[0]);  // an infinite end is never in the interval
  a.right_open = s.back() == ')' || std::isinf(hi.value.at[0]);
  return a;
}

// "a < b \\le c": the operands and the operators at the top level; no operators when there is none.
std::pair<std::vector<std::string>, std::vector<std::string>> split_comparisons(const std::string& s) {
  std::vector<std::string> ops;
  auto operands = split_top_by(s, [&](std::size_t i) -> std::size_t {
    if (s[i] == '<' || s[i] == '>') return 1;
    for (std::string_view word : {"\\le", "\\ge", "\\ne"})
      if (s.compare(i, 3, word) == 0 && (i + 3 >= s.size() || !std::isalpha(static_cast<unsigned char>(s[i + 3])))) return 3;
    return 0;
  }, &ops);
  return {operands, ops};
}

// x > 0, 1 < x \\le 2, x \\ne 3: each link turned to "<", "<=" or "!="; text when an operand is no expression.
MathAnswer inequality(const std::vector<std::string>& operands, const std::vector<std::string>& ops, std::string text) {
  MathAnswer a = text_answer(std::move(text));
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto l = parse_expression(operands[i]), r = parse_expression(operands[i + 1]);
    if (!l || !r) return a;
    MathComparison c{*l, *r, ops[i], is_letter_name(operands[i]) ? operands[i] : "", is_letter_name(operands[i + 1]) ? operands[i + 1] : ""};
    if (c.op == ">" || c.op == "\\ge") {
      std::swap(c.lhs, c.rhs);
      std::swap(c.lhs_letter, c.rhs_letter);
    }
    c.op = c.op == "\\ne" ? "!=" : c.op == "<" || c.op == ">" ? "<" : "<=";
    a.comparisons.push_back(std::move(c));
  }
  a.kind = MathAnswer::Kind::inequality;
  return a;
}

// \\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix} (also bmatrix, matrix, Bmatrix): cells row by row; nullopt when s is
// not one, text when its rows differ in length or a cell is not an answer.
std::optional<MathAnswer> matrix(const std::string& s, const std::string& text) {
  if (!s.starts_with("\\begin{")) return std::nullopt;
  const std::string env = s.substr(7, s.find('}') - 7);
  const std::string end = "\\end{" + env + "}";
  if (env != "pmatrix" && env != "bmatrix" && env != "matrix" && env != "Bmatrix") return std::nullopt;
  if (!s.ends_with(end)) return text_answer(text);
  auto rows = split_top(s.substr(8 + env.size(), s.size() - 8 - env.size() - end.size()), '\x02');
  if (!rows.empty() && rows.back().empty()) rows.pop_back();
  MathAnswer a = text_answer(text);
  for (const auto& row : rows) {
    const auto cells = split_top(row, '&');
    if (a.columns != 0 && static_cast<int>(cells.size()) != a.columns) return text_answer(text);
    a.columns = static_cast<int>(cells.size());
    for (const auto& cell : cells) {
      if (cell.empty()) return text_answer(text);
      a.items.push_back(parse_item(cell, false));
    }
  }
  a.kind = MathAnswer::Kind::matrix;
  return a;
}

MathAnswer parse_item(std::string s, bool allow_list) {
  s = trim(s);
  while (s.size() >= 2 && s.front() == '{' && closes_at_end(s)) s = trim(s.substr(1, s.size() - 2));
  const std::string text = fold(s);
  if (const auto pm = s.find("\\pm"); allow_list && pm != std::string::npos && s.find("\\pm", pm + 3) == std::string::npos) {
    std::string plus = s, minus = s;  // "a \pm b" is the list a + b, a - b
    plus.replace(pm, 3, "+");
    minus.replace(pm, 3, "-");
    return items_of(MathAnswer::Kind::list, {plus, minus}, text);
  }
  if (const auto parts = split_top(s, ','); allow_list && parts.size() > 1) return items_of(MathAnswer::Kind::list, parts, text);
  if (auto m = matrix(wrapped(s) && s.find("\\begin{") == 1 ? s.substr(1, s.size() - 2) : s, text)) return *m;
  if (const auto [operands, ops] = split_comparisons(s); !ops.empty()) return inequality(operands, ops, text);
  if (const auto sides = split_top(s, '='); sides.size() >= 2) {
    MathAnswer a = text_answer(text);
    a.kind = MathAnswer::Kind::relation;
    a.items = {parse_item(sides.back(), false)};
    a.lhs_is_letter = is_letter_name(sides.front());
    auto lhs = parse_expression(sides.front()), rhs = parse_expression(sides.back());
    if (lhs && rhs) {
      a.lhs = *lhs;
      a.rhs = *rhs;
      a.sides_are_values = true;
    }
    return a;
  }
  if (const auto pieces = split_cup(s); pieces.size() > 1) return items_of(MathAnswer::Kind::set_union, pieces, text);
  if (s.starts_with("\\{") && s.ends_with("\\}")) {
    const std::string inside = trim(s.substr(2, s.size() - 4));
    if (inside.empty()) return items_of(MathAnswer::Kind::set, {}, text);
    return items_of(MathAnswer::Kind::set, split_top(inside, ','), text);
  }
  if (wrapped(s) && split_top(s.substr(1, s.size() - 2), ',').size() > 1) return bracketed(s, text);
  if (const auto v = parse_expression(s)) return scalar_answer(*v, text);
  if (wrapped(s)) return text_answer(fold(s.substr(1, s.size() - 2)));
  return text_answer(text);
}

}  // namespace

MathAnswer scalar_answer(const MathValue& v, std::string text) {
  MathAnswer a = text_answer(std::move(text));
  a.kind = MathAnswer::Kind::scalar;
  a.value = v;
  return a;
}

MathAnswer parse_math_answer(std::string_view answer) {
  // A final answer is short; a longer one (a whole derivation in the box) is compared as text, which also bounds
  // the parser's recursion and the quadratic set comparison.
  constexpr std::size_t kMaxAnswer = 1000;
  std::string s = normalize_math_latex(answer);
  return s.size() > kMaxAnswer ? text_answer(fold(std::move(s))) : parse_item(std::move(s), true);
}

}  // namespace r1

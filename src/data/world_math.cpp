// Arithmetic and countdown problems: expression trees, solved one operator at a time.
#include <algorithm>
#include <optional>
#include <string>

#include "data/world_kinds.hpp"

namespace r1 {

std::string join_list(const std::vector<std::string>& items, Language l) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? (l == Language::en ? " and " : " y ") : ", ";
    out += items[i];
  }
  return out;
}

std::string op_word(char op, Language l) {
  const bool en = l == Language::en;
  switch (op) {
    case '+': return en ? "plus" : "más";
    case '-': return en ? "minus" : "menos";
    case '*': return en ? "times" : "por";
    default: return en ? "divided by" : "dividido entre";
  }
}

namespace {

// A binary expression tree over non-negative integers.
struct Tree {
  struct Node {
    char op = 0;  // 0: a number
    std::int64_t value = 0;
    int left = -1, right = -1;
  };
  std::vector<Node> nodes;

  int leaf(std::int64_t v) {
    nodes.push_back({0, v});
    return static_cast<int>(nodes.size()) - 1;
  }
  int join(char op, int l, int r) {
    nodes.push_back({op, 0, l, r});
    return static_cast<int>(nodes.size()) - 1;
  }
  static int prec(char op) { return op == '+' || op == '-' ? 1 : op ? 2 : 3; }
  // Parentheses exactly where the tree needs them: a lower-precedence operand, or an equal one on the
  // right (so "a - (b - c)" and "a * (b * c)" keep their shape and the solving order is the written one).
  std::string str(int i) const {
    const Node& n = nodes[static_cast<std::size_t>(i)];
    if (!n.op) return std::to_string(n.value);
    auto side = [&](int c, bool right) {
      const int pc = prec(nodes[static_cast<std::size_t>(c)].op), pn = prec(n.op);
      return (pc < pn || (right && pc == pn)) ? "(" + str(c) + ")" : str(c);
    };
    return side(n.left, false) + " " + n.op + " " + side(n.right, true);
  }
  // The value of subtree i, after swapping the operands of every subtraction whose left side is smaller.
  std::int64_t make_differences_positive(int i) {
    Node& n = nodes[static_cast<std::size_t>(i)];
    if (!n.op) return n.value;
    std::int64_t a = make_differences_positive(n.left), b = make_differences_positive(n.right);
    if (n.op == '-' && a < b) {
      std::swap(n.left, n.right);
      std::swap(a, b);
    }
    return n.op == '+' ? a + b : n.op == '-' ? a - b : a * b;
  }
  // The leftmost operator (in written order) whose operands are both numbers; -1 when i is a number.
  int reducible(int i) const {
    const Node& n = nodes[static_cast<std::size_t>(i)];
    if (!n.op) return -1;
    if (const int l = reducible(n.left); l >= 0) return l;
    if (!nodes[static_cast<std::size_t>(n.left)].op && !nodes[static_cast<std::size_t>(n.right)].op) return i;
    return reducible(n.right);
  }
};

struct Reduction {
  std::int64_t a, b, result;
  char op;
  std::string after;  // the whole expression once this operator is replaced by its result
};

// Solves the tree at root one operator at a time; empty when a step is negative or not a whole number.
std::vector<Reduction> solve(Tree t, int root) {
  std::vector<Reduction> steps;
  for (int i = t.reducible(root); i >= 0; i = t.reducible(root)) {
    auto& n = t.nodes[static_cast<std::size_t>(i)];
    const std::int64_t a = t.nodes[static_cast<std::size_t>(n.left)].value, b = t.nodes[static_cast<std::size_t>(n.right)].value;
    std::int64_t r = 0;
    switch (n.op) {
      case '+': r = a + b; break;
      case '-': r = a - b; break;
      case '*': r = a * b; break;
      default:
        if (b == 0 || a % b != 0) return {};
        r = a / b;
    }
    if (r < 0) return {};
    steps.push_back({a, b, r, n.op, ""});
    n = {0, r, -1, -1};
    steps.back().after = t.str(root);
  }
  return steps;
}

// A plausible wrong last step: the same two numbers under another operation that stays a whole number and
// misses the target (the solution then checks it and revises); none if no operation qualifies.
std::optional<Reduction> first_attempt(const Reduction& last, std::int64_t target) {
  for (const char op : {'+', '*', '-'}) {
    if (op == last.op) continue;
    const std::int64_t r = op == '+' ? last.a + last.b : op == '*' ? last.a * last.b : last.a - last.b;
    if (r >= 0 && r != target) return Reduction{last.a, last.b, r, op, ""};
  }
  return std::nullopt;
}

}  // namespace

Problem make_arithmetic(Draw& d, Language l, int level) {
  const bool en = l == Language::en;
  // Level 1: 2-4 operators over 1..30 (factors 2..9), results up to 999; each level up adds two operators,
  // level 3 and 4 take numbers up to 99 (factors up to 12) and results up to 99,999.
  const std::int64_t min_ops = 2 * level, max_ops = 2 * level + 2, top = level >= 3 ? 99 : 30, factor = level >= 3 ? 12 : 9;
  const std::int64_t max_result = level == 1 ? 999 : level == 2 ? 9999 : 99999;
  for (;;) {
    Tree t;
    const int root = t.leaf(d.range(1, top));
    const std::int64_t ops = d.range(min_ops, max_ops);
    for (std::int64_t k = 0; k < ops; ++k) {
      // Grow the tree at a random number: it becomes an operator over two new numbers.
      std::vector<int> leaves;
      for (int i = 0; i < static_cast<int>(t.nodes.size()); ++i)
        if (!t.nodes[static_cast<std::size_t>(i)].op) leaves.push_back(i);
      const int at = d.pick(leaves);
      const char op = "+-*"[d.range(0, 2)];
      const auto operand = [&] { return op == '*' ? d.range(2, factor) : d.range(1, top); };
      const int a = t.leaf(operand()), b = t.leaf(operand());
      t.nodes[static_cast<std::size_t>(at)] = {op, 0, a, b};
    }
    // Above level 1 a subtraction that would go negative is turned around (b - a), so long expressions do
    // not spend the draw on rejections; level 1 keeps its rejection (and so its problems).
    if (level > 1) t.make_differences_positive(root);
    const std::vector<Reduction> steps = solve(t, root);
    if (steps.empty() || steps.back().result > max_result) continue;
    const std::string expr = t.str(root);
    Problem p;
    p.kind = ProblemKind::arithmetic;
    p.language = l;
    const std::vector<std::string> asks = en ? std::vector<std::string>{"Compute " + expr + ".", "What is " + expr + "?",
                                                                        "Calculate the value of " + expr + "."}
                                             : std::vector<std::string>{"Calcula " + expr + ".", "¿Cuánto es " + expr + "?",
                                                                        "Calcula el valor de " + expr + "."};
    p.prompt = d.pick(asks);
    for (std::size_t s = 0; s < steps.size(); ++s) {
      const Reduction& r = steps[s];
      const bool last = s + 1 == steps.size();
      const std::string lead = s == 0 ? (en ? "First, " : "Primero, ") : last ? (en ? "Finally, " : "Por último, ") : (en ? "Next, " : "Después, ");
      std::string line = lead + std::to_string(r.a) + " " + op_word(r.op, l) + " " + std::to_string(r.b) + (en ? " is " : " es ") +
                         std::to_string(r.result);
      line += last ? "." : (en ? ", so the expression becomes " : ", así que la expresión queda ") + r.after + ".";
      p.solution_steps.push_back(line);
    }
    p.answer = std::to_string(steps.back().result);
    p.instance_key = "arithmetic:" + expr;
    return p;
  }
}

Problem make_countdown(Draw& d, Language l, int level) {
  const bool en = l == Language::en;
  // Level 1: 3-4 numbers, 2 or more of them used, targets 10..999; level 2: 5 numbers, at least 3 used;
  // levels 3 and 4: 6 and 7 numbers, at least 4 and 5 used, targets up to 9,999, and a worked solution that
  // checks a first attempt against the target and revises its last step.
  const std::int64_t min_count = level == 1 ? 3 : level + 3, max_count = level == 1 ? 4 : min_count;
  const std::int64_t min_used = level == 1 ? 2 : level + 1, max_target = level >= 3 ? 9999 : 999;
  for (;;) {
    const std::int64_t count = d.range(min_count, max_count);
    std::vector<std::int64_t> numbers;
    for (std::int64_t i = 0; i < count; ++i) numbers.push_back(d.coin(0.2) ? 25 * d.range(1, 4) : d.range(1, 12));
    std::vector<std::int64_t> order = numbers;  // a random order; the first `used` numbers make the target
    for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[static_cast<std::size_t>(d.range(0, static_cast<std::int64_t>(i)))]);
    const std::int64_t used = d.range(min_used, count);
    Tree t;
    int acc = t.leaf(order[0]);
    std::int64_t value = order[0];
    for (std::int64_t j = 1; j < used; ++j) {
      const std::int64_t n = order[static_cast<std::size_t>(j)];
      std::string ops = "+";
      if (value > n) ops += '-';
      if (value > 1 && n > 1 && value * n <= max_target + 1) ops += '*';
      if (n > 1 && value % n == 0) ops += '/';
      const char op = ops[static_cast<std::size_t>(d.range(0, static_cast<std::int64_t>(ops.size()) - 1))];
      const bool swap = (op == '+' || op == '*') && d.coin();  // commutative: either order reads naturally
      acc = swap ? t.join(op, t.leaf(n), acc) : t.join(op, acc, t.leaf(n));
      value = op == '+' ? value + n : op == '-' ? value - n : op == '*' ? value * n : value / n;
    }
    if (value < 10 || value > max_target || std::find(numbers.begin(), numbers.end(), value) != numbers.end()) continue;
    const std::vector<Reduction> steps = solve(t, acc);
    if (steps.empty()) continue;
    const std::optional<Reduction> wrong = level >= 3 ? first_attempt(steps.back(), value) : std::nullopt;
    std::vector<std::string> shown;
    for (std::int64_t v : numbers) shown.push_back(std::to_string(v));
    const std::string target = std::to_string(value), expr = t.str(acc);
    Problem p;
    p.kind = ProblemKind::countdown;
    p.language = l;
    p.numbers = numbers;
    p.prompt = en ? "Using the numbers " + join_list(shown, l) + ", each at most once, and the operations + - * /, make " + target + "."
                  : "Usando los números " + join_list(shown, l) + ", cada uno como máximo una vez, y las operaciones + - * /, obtén " +
                        target + ".";
    p.solution_steps.push_back(en ? "We need to reach " + target + " using " + join_list(shown, l) + "."
                                  : "Necesitamos llegar a " + target + " usando " + join_list(shown, l) + ".");
    const auto combine = [&](const Reduction& r) {
      const std::string a = std::to_string(r.a), b = std::to_string(r.b), res = std::to_string(r.result);
      p.solution_steps.push_back((en ? "Combine " + a + " and " + b + ": " : "Combinamos " + a + " y " + b + ": ") + a + " " +
                                 op_word(r.op, l) + " " + b + (en ? " is " : " es ") + res + ".");
    };
    for (std::size_t s = 0; s + 1 < steps.size(); ++s) combine(steps[s]);
    if (wrong) {
      combine(*wrong);
      const std::string got = std::to_string(wrong->result);
      p.solution_steps.push_back(en ? "Check: " + got + " is not " + target + ". Wait, the last step needs another operation."
                                    : "Comprobamos: " + got + " no es " + target + ". Espera, el último paso necesita otra operación.");
    }
    combine(steps.back());
    p.solution_steps.push_back(en ? "This reaches the target " + target + " with " + expr + "."
                                  : "Así llegamos al objetivo " + target + " con " + expr + ".");
    p.answer = expr;
    std::vector<std::int64_t> sorted = numbers;
    std::sort(sorted.begin(), sorted.end());
    p.instance_key = "countdown:" + target + ":";
    for (std::int64_t v : sorted) p.instance_key += std::to_string(v) + ",";
    return p;
  }
}

}  // namespace r1

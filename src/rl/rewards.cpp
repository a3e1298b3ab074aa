#include "rl/rewards.hpp"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "core/error.hpp"
#include "data/exact_math.hpp"
#include "data/problem_files.hpp"
#include "rl/math_answer.hpp"

namespace r1 {
namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string_view() : s.substr(b, e - b + 1);
}

std::size_t count(std::string_view s, std::string_view what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string_view::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// The reasoning whose language is judged: inside <think>...</think> when the completion has it.
std::string_view reasoning(std::string_view c) {
  const auto open = c.find("<think>");
  if (open == std::string_view::npos) return c;
  const auto close = c.find("</think>", open);
  return c.substr(open + 7, close == std::string_view::npos ? std::string_view::npos : close - open - 7);
}

}  // namespace

std::optional<std::string> extract_answer(std::string_view c) {
  const auto close = c.rfind("</answer>");
  if (close != std::string_view::npos) {
    const auto open = c.rfind("<answer>", close);
    if (open != std::string_view::npos) {
      const std::string_view inside = c.substr(open + 8, close - open - 8);
      if (auto boxed = extract_boxed(inside)) return boxed;
      return std::string(trim(inside));
    }
  }
  return extract_boxed(c);
}

bool answers_match(std::string_view got, std::string_view want) { return math_answers_equal(got, want); }

double accuracy_reward(std::string_view completion, const Problem& p) {
  const auto answer = extract_answer(completion);
  if (!answer) return 0;
  if (p.kind != ProblemKind::countdown) return answers_match(*answer, p.answer) ? 1 : 0;
  const auto target = evaluate_expression(p.answer);
  R1_CHECK(target, "countdown problem ", p.id, " has an answer that is not an expression: ", p.answer);
  std::string_view expr = *answer;
  if (const auto eq = expr.find('='); eq != std::string_view::npos) {
    const auto stated = parse_number(expr.substr(eq + 1));
    if (!stated || !(*stated == target->value)) return 0;
    expr = expr.substr(0, eq);
  }
  const auto got = evaluate_expression(expr);
  if (!got || !(got->value == target->value)) return 0;
  std::vector<std::int64_t> left = p.numbers;  // each given number may be used once
  for (std::int64_t v : got->numbers) {
    const auto it = std::find(left.begin(), left.end(), v);
    if (it == left.end()) return 0;
    left.erase(it);
  }
  return 1;
}

double format_reward(std::string_view c) {
  for (std::string_view tag : {"<think>", "</think>", "<answer>", "</answer>"})
    if (count(c, tag) != 1) return 0;
  const std::string_view t = trim(c);
  if (!t.starts_with("<think>") || !t.ends_with("</answer>")) return 0;
  const auto think_end = t.find("</think>"), answer = t.find("<answer>");
  if (answer < think_end) return 0;
  return trim(t.substr(think_end + 8, answer - think_end - 8)).empty() ? 1 : 0;
}

double LanguageCount::fraction(Language target) const {
  const std::int64_t all = english + spanish;
  if (all == 0) return 0;
  return static_cast<double>(target == Language::en ? english : spanish) / static_cast<double>(all);
}

LanguageCount count_language_words(std::string_view completion) {
  // Frequent function words and the vocabulary of worked solutions; words both languages share ("a", "no",
  // "me") are left out so that they never tip the count.
  static const std::unordered_set<std::string> en{
      "the", "is", "and", "so", "of", "to", "we", "first", "next", "finally", "then", "with", "it", "this", "that", "are", "in",
      "has", "have", "what", "which", "how", "many", "after", "each", "there", "more", "than", "larger", "smallest", "largest",
      "comes", "plus", "minus", "times", "divided", "by", "becomes", "expression", "combine", "reach", "target", "using", "need",
      "starts", "buying", "giving", "change", "dollars", "boxes", "box", "friends", "friend", "gets", "write", "both", "two",
      "decimal", "places", "hundredths", "against", "common", "denominator", "use", "zero", "be", "not", "for", "on", "at", "you",
      "i", "my", "your", "can", "help", "answer", "let", "think", "because", "equals", "now", "wait", "yes", "number", "numbers"};
  static const std::unordered_set<std::string> es{
      "el", "la", "los", "las", "es", "y", "que", "de", "en", "un", "una", "primero", "por", "así", "queda", "dividido", "entre",
      "combinamos", "llegamos", "objetivo", "con", "necesitamos", "llegar", "usando", "empieza", "comprar", "tiene", "darle", "cada",
      "caja", "cajas", "hay", "se", "reparten", "amigos", "amigo", "recibe", "cuestan", "cambio", "escribimos", "dos", "decimales",
      "contra", "menos", "usamos", "denominador", "mayor", "menor", "viene", "lo", "tanto", "cero", "para", "del", "al", "yo", "tu", "mi",
      "puedo", "ayudar", "respuesta", "pensemos", "porque", "igual", "ahora", "espera", "número", "números", "luego", "entonces"};
  LanguageCount out;
  const std::string_view text = reasoning(completion);
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    // Bytes of á é í ó ú ñ ü ¿ ¡ (UTF-8 lead 0xC2/0xC3) mark a Spanish word.
    bool accented = false;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      const auto a = static_cast<unsigned char>(word[i]), b = static_cast<unsigned char>(word[i + 1]);
      if ((a == 0xC3 && (b == 0xA1 || b == 0xA9 || b == 0xAD || b == 0xB3 || b == 0xBA || b == 0xB1 || b == 0xBC || b == 0x81 ||
                         b == 0x89 || b == 0x8D || b == 0x93 || b == 0x9A || b == 0x91)) ||
          (a == 0xC2 && (b == 0xBF || b == 0xA1)))
        accented = true;
    }
    if (accented || es.count(word)) ++out.spanish;
    else if (en.count(word)) ++out.english;
    word.clear();
  };
  for (unsigned char ch : text) {
    if (std::isalpha(ch) || ch >= 0x80) word += static_cast<char>(std::tolower(ch));
    else flush();
  }
  flush();
  return out;
}

double language_consistency_reward(std::string_view completion, Language target) {
  return count_language_words(completion).fraction(target);
}

double overlong_penalty(std::int64_t tokens, bool truncated, std::int64_t max_tokens, std::int64_t buffer) {
  if (truncated || tokens >= max_tokens) return -1;
  const std::int64_t free_until = max_tokens - buffer;
  if (tokens <= free_until || buffer <= 0) return 0;
  return -static_cast<double>(tokens - free_until) / static_cast<double>(buffer);
}

Rewards score_completion(std::string_view completion, const Problem& p, const RewardWeights& w, std::int64_t tokens, bool truncated) {
  Rewards r;
  r.accuracy = accuracy_reward(completion, p);
  r.format = format_reward(completion);
  r.language = w.language != 0 ? language_consistency_reward(completion, p.language) : 0;
  if (w.overlong != 0) {
    R1_REQUIRE(w.max_tokens > 0, "the overlong penalty needs a positive max_tokens");
    r.overlong = overlong_penalty(tokens, truncated, w.max_tokens, w.overlong_buffer);
  }
  r.total = w.accuracy * r.accuracy + w.format * r.format + w.language * r.language + w.overlong * r.overlong;
  return r;
}

std::string final_summary(std::string_view completion) {
  std::string_view s = completion;
  const auto open = s.rfind("<answer>");
  if (open != std::string_view::npos) {
    s = s.substr(open + 8);
    s = s.substr(0, s.find("</answer>"));
  } else if (const auto think = s.rfind("</think>"); think != std::string_view::npos) {
    s = s.substr(think + 8);
  }
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return std::string(s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1));
}

std::int64_t count_reflection_words(std::string_view text) {
  static const char* kWords[] = {"wait", "verify", "check", "espera", "verificar", "comprobar"};
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::int64_t n = 0;
  for (const char* w : kWords) {
    const std::string word(w);
    for (std::size_t at = lower.find(word); at != std::string::npos; at = lower.find(word, at + 1)) {
      const bool start = at == 0 || !std::isalpha(static_cast<unsigned char>(lower[at - 1]));
      const bool end = at + word.size() >= lower.size() || !std::isalpha(static_cast<unsigned char>(lower[at + word.size()]));
      n += start && end;
    }
  }
  return n;
}

}  // namespace r1

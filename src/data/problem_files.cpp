#include "data/problem_files.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace r1 {

std::optional<std::string> extract_boxed(std::string_view text) {
  const auto at = text.rfind("\\boxed");
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + 6;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  int depth = 0;
  for (std::size_t j = i; j < text.size(); ++j) {
    if (text[j] == '{') ++depth;
    if (text[j] == '}' && --depth == 0) return std::string(text.substr(i + 1, j - i - 1));
  }
  return std::nullopt;
}

namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// Each non-blank line of a JSONL file, parsed; fill turns one object into a problem or returns an error.
std::vector<Problem> load_jsonl(const std::string& path, const std::function<std::string(const nlohmann::json&, Problem&)>& fill) {
  std::istringstream in(read_file(path));
  std::vector<Problem> out;
  std::string line;
  for (std::int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (trim(line).empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) R1_FAIL(user, path, ":", lineno, ": not a JSON object");
    Problem p;
    p.id = lineno;
    p.kind = ProblemKind::external;
    p.language = Language::en;
    if (const std::string problem = fill(j, p); !problem.empty()) R1_FAIL(user, path, ":", lineno, ": ", problem);
    out.push_back(std::move(p));
  }
  return out;
}

std::string string_field(const nlohmann::json& j, const char* key, std::string& out) {
  if (!j.contains(key) || !j[key].is_string()) return detail::concat("expected a string field \"", key, "\"");
  out = j[key].get<std::string>();
  return {};
}

}  // namespace

std::vector<Problem> load_gsm8k(const std::string& path) {
  return load_jsonl(path, [](const nlohmann::json& j, Problem& p) -> std::string {
    std::string answer;
    if (auto e = string_field(j, "question", p.prompt); !e.empty()) return e;
    if (auto e = string_field(j, "answer", answer); !e.empty()) return e;
    const auto mark = answer.rfind("####");
    if (mark == std::string::npos) return "field \"answer\" does not end with \"#### <number>\"";
    p.answer = trim(std::string_view(answer).substr(mark + 4));
    if (p.answer.empty()) return "field \"answer\" has nothing after \"####\"";
    std::istringstream steps(answer.substr(0, mark));
    for (std::string s; std::getline(steps, s);) {
      // GSM8K's calculator annotations <<48/2=24>> repeat the arithmetic the text already states.
      for (auto a = s.find("<<"); a != std::string::npos; a = s.find("<<")) {
        const auto b = s.find(">>", a);
        if (b == std::string::npos) break;
        s.erase(a, b + 2 - a);
      }
      if (!trim(s).empty()) p.solution_steps.push_back(trim(s));
    }
    return {};
  });
}

std::vector<Problem> load_math(const std::string& path) {
  return load_jsonl(path, [](const nlohmann::json& j, Problem& p) -> std::string {
    std::string solution;
    if (auto e = string_field(j, "problem", p.prompt); !e.empty()) return e;
    if (auto e = string_field(j, "solution", solution); !e.empty()) return e;
    const auto boxed = extract_boxed(solution);
    if (!boxed) return "field \"solution\" has no complete \\boxed{...} answer";
    p.answer = trim(*boxed);
    p.solution_steps = {trim(solution)};
    return {};
  });
}

ProblemFile load_problem_file(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line;
  for (std::int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (trim(line).empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) R1_FAIL(user, path, ":", lineno, ": not a JSON object");
    if (j.contains("question")) return {"gsm8k", load_gsm8k(path)};
    if (j.contains("problem")) return {"math", load_math(path)};
    R1_FAIL(user, path, ":", lineno, ": neither GSM8K (a \"question\" field) nor MATH (a \"problem\" field)");
  }
  R1_FAIL(user, path, ": no problems (the file is empty)");
}

}  // namespace r1

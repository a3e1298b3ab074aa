// Problem sets from JSONL files: GSM8K ({"question", "answer": "... #### 42"}) and MATH ({"problem",
// "solution": "... \boxed{...}"}), as Problem records (kind external, English).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/reasoning_world.hpp"

namespace r1 {

// The content of the last \boxed{...} in text, braces nested to any depth; nullopt when there is none or
// its braces do not close.
std::optional<std::string> extract_boxed(std::string_view text);

// Errors name file:line and the field. Blank lines are skipped; ids are line numbers.
std::vector<Problem> load_gsm8k(const std::string& path);
std::vector<Problem> load_math(const std::string& path);

// A GSM8K or MATH file told apart by its first record's fields ("question" / "problem"); dataset is
// "gsm8k" or "math". Errors name file:line.
struct ProblemFile {
  std::string dataset;
  std::vector<Problem> problems;
};
ProblemFile load_problem_file(const std::string& path);

}  // namespace r1

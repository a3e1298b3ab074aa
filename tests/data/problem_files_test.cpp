#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "core/error.hpp"
#include "data/problem_files.hpp"

using namespace r1;

namespace {

const std::string kDir = R1HPC_DATA_FIXTURES;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "no error";
}

}  // namespace

TEST(ExtractBoxed, TakesTheLastBoxWithNestedBraces) {
  EXPECT_EQ(extract_boxed("so \\boxed{\\frac{3}{4}}."), "\\frac{3}{4}");
  EXPECT_EQ(extract_boxed("\\boxed{1} then \\boxed {x^{2^{3}}}"), "x^{2^{3}}");
  EXPECT_FALSE(extract_boxed("\\boxed{open").has_value());
  EXPECT_FALSE(extract_boxed("no box").has_value());
}

TEST(ProblemFiles, Gsm8kAnswersFollowTheHashes) {
  const auto ps = load_gsm8k(kDir + "/gsm8k_tiny.jsonl");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].answer, "72");
  EXPECT_EQ(ps[0].id, 1);
  EXPECT_EQ(ps[1].id, 3);  // ids are line numbers; the blank line is skipped
  EXPECT_EQ(ps[1].answer, "2,400");
  EXPECT_EQ(ps[0].kind, ProblemKind::external);
  EXPECT_EQ(ps[0].solution_steps,
            (std::vector<std::string>{"Natalia sold 48/2 = 24 clips in May.", "Natalia sold 48+24 = 72 clips altogether in April and May."}));
}

TEST(ProblemFiles, MathAnswersAreTheBoxedContent) {
  const auto ps = load_math(kDir + "/math_tiny.jsonl");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].answer, "\\frac{3}{4}");
  EXPECT_EQ(ps[1].answer, "2\\sqrt{2}");
  EXPECT_EQ(ps[1].prompt, "Simplify $\\sqrt{8}$.");
}

TEST(ProblemFiles, MalformedRowsNameFileAndLine) {
  const std::string g = error_of([] { load_gsm8k(kDir + "/gsm8k_malformed.jsonl"); });
  EXPECT_NE(g.find("gsm8k_malformed.jsonl:2: field \"answer\" does not end with \"#### <number>\""), std::string::npos) << g;
  const std::string m = error_of([] { load_math(kDir + "/math_malformed.jsonl"); });
  EXPECT_NE(m.find("math_malformed.jsonl:2: field \"solution\" has no complete \\boxed{...} answer"), std::string::npos) << m;
  const std::string wrong = error_of([] { load_math(kDir + "/gsm8k_tiny.jsonl"); });
  EXPECT_NE(wrong.find("gsm8k_tiny.jsonl:1: expected a string field \"problem\""), std::string::npos) << wrong;
}

TEST(ProblemFiles, DatasetIsToldApartByTheFirstRecordsFields) {
  const ProblemFile g = load_problem_file(kDir + "/gsm8k_tiny.jsonl");
  EXPECT_EQ(g.dataset, "gsm8k");
  EXPECT_EQ(g.problems.size(), load_gsm8k(kDir + "/gsm8k_tiny.jsonl").size());
  const ProblemFile m = load_problem_file(kDir + "/math_tiny.jsonl");
  EXPECT_EQ(m.dataset, "math");
  EXPECT_EQ(m.problems.size(), load_math(kDir + "/math_tiny.jsonl").size());
  const std::string path = ::testing::TempDir() + "/neither.jsonl";
  std::ofstream(path) << "\n{\"prompt\": \"hi\", \"response\": \"hello\"}\n";
  const std::string other = error_of([&] { load_problem_file(path); });
  EXPECT_NE(other.find("neither.jsonl:2: neither GSM8K"), std::string::npos) << other;
}

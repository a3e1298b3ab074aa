#include <gtest/gtest.h>

#include "data/exact_math.hpp"
#include "rl/rewards.hpp"

using namespace r1;

namespace {

Problem problem(std::string answer, ProblemKind kind = ProblemKind::arithmetic, std::vector<std::int64_t> numbers = {}) {
  Problem p;
  p.kind = kind;
  p.answer = std::move(answer);
  p.numbers = std::move(numbers);
  return p;
}

}  // namespace

TEST(Rewards, AccuracyTable) {
  const Problem countdown = problem("(25 - 4) * 3", ProblemKind::countdown, {25, 4, 3, 7});  // target 63
  const struct {
    std::string completion;
    Problem p;
    double want;
  } cases[] = {
      {"<think>7*3</think><answer>21</answer>", problem("21"), 1},
      {"<think>7*3</think><answer> 21. </answer>", problem("21"), 1},
      {"<think>...</think><answer>22</answer>", problem("21"), 0},
      {"The answer is \\boxed{21}.", problem("21"), 1},
      {"<answer>\\boxed{\\frac{3}{4}}</answer>", problem("3/4"), 1},
      {"<answer>0.75</answer>", problem("\\frac{3}{4}"), 1},
      {"<answer>6/8</answer>", problem("0.75"), 1},
      {"<answer>1,000</answer>", problem("1000"), 1},
      {"<answer>2,400</answer>", problem("2400"), 1},
      {"<answer>1,00</answer>", problem("100"), 0},  // not a thousands grouping
      {"<answer>-5</answer>", problem("-5"), 1},
      {"<answer>$12$</answer>", problem("12"), 1},
      {"<answer>7, 12, 31</answer>", problem("7, 12, 31"), 1},
      {"<answer>7,12,31</answer>", problem("7, 12, 31"), 1},
      {"<answer>12, 7, 31</answer>", problem("7, 12, 31"), 1},  // a list of answers is a set (math-verify's verdict)
      {"<answer>7, 12, 13</answer>", problem("7, 12, 31"), 0},
      {"<answer>2 \\sqrt{2}</answer>", problem("2\\sqrt{2}"), 1},
      {"no tags, no box: 21", problem("21"), 0},
      {"<answer>21", problem("21"), 0},  // an unclosed tag is no answer
      {"<answer>1</answer> then <answer>21</answer>", problem("21"), 1},  // the last answer counts
      {"<answer>(25 - 4) * 3</answer>", countdown, 1},
      {"<answer>3 * (25 - 4) = 63</answer>", countdown, 1},
      {"<answer>7 * 9</answer>", countdown, 0},           // 9 is not given
      {"<answer>(25 - 4) * 3 = 64</answer>", countdown, 0},  // wrong stated target
      {"<answer>25 + 25 + 7 + 3 + 3</answer>", countdown, 0},  // 25 and 3 used twice
      {"<answer>(7 + 4 - 25 / 25) * 3</answer>", countdown, 0},
      {"<answer>25 * 3 - 4 * 3</answer>", countdown, 0},
      {"<answer>(25 - 4) * 3 + 7 - 7</answer>", countdown, 0},
      {"<answer>7 * (3 + 4 + 25 / 25)</answer>", countdown, 0},
      {"<answer>63</answer>", countdown, 0},  // the target alone uses no numbers
      {"<answer>(25 - 4) * (3</answer>", countdown, 0},
  };
  for (const auto& c : cases) EXPECT_EQ(accuracy_reward(c.completion, c.p), c.want) << c.completion;
}

TEST(Rewards, FormatTable) {
  const std::pair<std::string, double> cases[] = {
      {"<think>a</think><answer>b</answer>", 1},
      {"  <think>\nreasoning\n</think>\n\n<answer>42</answer>\n", 1},
      {"<think>a</think>extra<answer>b</answer>", 0},
      {"preface <think>a</think><answer>b</answer>", 0},
      {"<think>a</think><answer>b</answer> trailing", 0},
      {"<answer>b</answer><think>a</think>", 0},
      {"<think>a</think><think>b</think><answer>c</answer>", 0},
      {"<think>a<answer>b</answer></think>", 0},
      {"<think>a</think>", 0},
      {"<think>a<answer>b</answer>", 0},
      {"", 0},
  };
  for (const auto& [c, want] : cases) EXPECT_EQ(format_reward(c), want) << c;
}

TEST(Rewards, LanguageConsistencyIsTheTargetShareOfReasoningWords) {
  const std::string en = "<think>First, 7 times 3 is 21, so the answer is 21.</think><answer>21</answer>";
  const std::string es = "<think>Primero, 7 por 3 es 21, así que la respuesta es 21.</think><answer>21</answer>";
  const std::string mixed = "<think>Primero, 7 times 3 es 21, so the respuesta is 21.</think><answer>21</answer>";
  EXPECT_EQ(language_consistency_reward(en, Language::en), 1.0);
  EXPECT_EQ(language_consistency_reward(en, Language::es), 0.0);
  EXPECT_EQ(language_consistency_reward(es, Language::es), 1.0);
  const LanguageCount m = count_language_words(mixed);
  EXPECT_EQ(m.english, 4);  // times, so, the, is
  EXPECT_EQ(m.spanish, 3);  // primero, es, respuesta
  EXPECT_DOUBLE_EQ(m.fraction(Language::es), 3.0 / 7.0);
  EXPECT_EQ(language_consistency_reward("<think>7 * 3 = 21</think>", Language::en), 0.0);  // no words: no credit
  EXPECT_EQ(count_language_words("¿Cuántas? niño").spanish, 2);  // accented words are Spanish without a list
  // Only the reasoning counts: an English answer after Spanish thinking does not dilute it.
  EXPECT_EQ(language_consistency_reward("<think>Primero, es así.</think><answer>the answer is 5</answer>", Language::es), 1.0);
}

TEST(Rewards, OverlongPenaltyRampsToMinusOneAndTruncationIsMinusOne) {
  EXPECT_EQ(overlong_penalty(100, false, 1000, 200), 0.0);
  EXPECT_EQ(overlong_penalty(800, false, 1000, 200), 0.0);
  EXPECT_DOUBLE_EQ(overlong_penalty(900, false, 1000, 200), -0.5);
  EXPECT_EQ(overlong_penalty(1000, false, 1000, 200), -1.0);
  EXPECT_EQ(overlong_penalty(300, true, 1000, 200), -1.0);
  EXPECT_EQ(overlong_penalty(999, false, 1000, 0), 0.0);
}

TEST(Rewards, WeightedSum) {
  Problem p = problem("21");
  p.language = Language::es;
  const std::string c = "<think>Primero, 7 por 3 es 21.</think><answer>21</answer>";
  const Rewards r = score_completion(c, p, {.accuracy = 1, .format = 0.5, .language = 0.1, .overlong = 1, .max_tokens = 100,
                                            .overlong_buffer = 20},
                                     90, false);
  EXPECT_EQ(r.accuracy, 1);
  EXPECT_EQ(r.format, 1);
  EXPECT_EQ(r.language, 1);
  EXPECT_DOUBLE_EQ(r.overlong, -0.5);
  EXPECT_DOUBLE_EQ(r.total, 1 + 0.5 + 0.1 - 0.5);
  const Rewards t = score_completion("<think>Primero, 7 por", p, {}, 100, true);  // R1's default: accuracy + format
  EXPECT_EQ(t.total, 0);
}

TEST(Rewards, FinalSummaryIsTheAnswerElseTheTextAfterTheReasoning) {
  // The helpfulness reward model reads this: never the reasoning.
  EXPECT_EQ(final_summary("<think>2 + 2 is 4</think> <answer> The answer is 4. </answer>"), "The answer is 4.");
  EXPECT_EQ(final_summary("<think>a</think><answer>x</answer><answer>y</answer>"), "y");
  EXPECT_EQ(final_summary("<think>greet back</think>\nHello! How can I help?"), "Hello! How can I help?");
  EXPECT_EQ(final_summary("  Hello! How can I help?\n"), "Hello! How can I help?");
  EXPECT_EQ(final_summary("<think>unfinished</think><answer>cut"), "cut");
  EXPECT_EQ(final_summary("<think>only reasoning</think>"), "");
}

TEST(Rewards, ReflectionWordsCountWholeWordsInEitherLanguageWhateverTheCase) {
  EXPECT_EQ(count_reflection_words("Wait, let me verify: check 2 + 2. WAIT."), 4);
  EXPECT_EQ(count_reflection_words("Espera, voy a comprobar y verificar."), 3);
  // Inside a longer word it is not a reflection.
  EXPECT_EQ(count_reflection_words("awaited checks, unverifyable, checkpoint"), 0);
  EXPECT_EQ(count_reflection_words(""), 0);
}

TEST(ExactMath, ParsesNumbersAndEvaluatesExpressions) {
  EXPECT_EQ(parse_number("2.50"), Rational::make(5, 2));
  EXPECT_EQ(parse_number("-\\frac{1}{2}"), Rational::make(-1, 2));
  EXPECT_EQ(parse_number(" 12,345,678 "), Rational::make(12345678, 1));
  EXPECT_FALSE(parse_number("12,34").has_value());
  EXPECT_FALSE(parse_number("abc").has_value());
  const auto e = evaluate_expression("(100 - 4) / 3 * -2");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->value, *Rational::make(-64, 1));
  EXPECT_EQ(e->numbers, (std::vector<std::int64_t>{100, 4, 3, 2}));
  EXPECT_FALSE(evaluate_expression("1 / (2 - 2)").has_value());
  EXPECT_FALSE(evaluate_expression("2 +").has_value());
  EXPECT_FALSE(evaluate_expression("99999999999 * 99999999999 * 99999999999").has_value());
}

#include <gtest/gtest.h>

#include "rl/rejection.hpp"
#include "rl/rewards.hpp"

using namespace r1;

namespace {

Problem problem(std::string answer, Language l = Language::en) {
  Problem p;
  p.id = 42;
  p.prompt = "What is 3 + 4 * 5?";
  p.answer = std::move(answer);
  p.language = l;
  return p;
}

Candidate candidate(std::string response, std::int64_t tokens = 20, bool truncated = false) {
  return {std::move(response), tokens, truncated};
}

const std::string kGood = "<think>First we multiply 4 times 5, then the sum is 23.</think><answer>23</answer>";

RejectionConfig config(std::int64_t keep = 4) {
  RejectionConfig c;
  c.keep_per_prompt = keep;
  return c;
}

}  // namespace

TEST(Rejection, EachReasonOnACraftedCompletion) {
  RejectionConfig c = config();
  c.max_tokens = 100;
  const struct {
    Candidate sample;
    Verdict want;
  } cases[] = {
      {candidate(kGood), Verdict::accepted},
      {candidate(kGood, 20, true), Verdict::truncated},                // cut at the length limit
      {candidate(kGood, 101), Verdict::overlong},                      // beyond rejection.max_tokens
      {candidate("the answer is <answer>23</answer>"), Verdict::malformed},  // no <think>
      {candidate("<think>3 + 20</think><answer>23</answer> and more"), Verdict::malformed},
      {candidate("<think>First we add.</think><answer>24</answer>"), Verdict::incorrect},
      {candidate("<think>First we multiply, luego sumamos y así queda el número.</think><answer>23</answer>"), Verdict::mixed_language},
      {candidate("<think>so so so so so so so so so so so so so so</think><answer>23</answer>"), Verdict::repetitive},
  };
  for (const auto& k : cases) EXPECT_EQ(judge_samples({k.sample}, problem("23"), c), std::vector<Verdict>{k.want}) << k.sample.response;
}

TEST(Rejection, ReasoningWithoutClassifiedWordsIsNotMixedLanguage) {
  EXPECT_EQ(judge_samples({candidate("<think>4 * 5 = 20, 3 + 20 = 23</think><answer>23</answer>")}, problem("23"), config()),
            std::vector<Verdict>{Verdict::accepted});
  // A Spanish problem answered in English is mixed for its target language.
  EXPECT_EQ(judge_samples({candidate(kGood)}, problem("23", Language::es), config()), std::vector<Verdict>{Verdict::mixed_language});
  RejectionConfig keep_mixed = config();
  keep_mixed.drop_mixed_language = false;
  EXPECT_EQ(judge_samples({candidate(kGood)}, problem("23", Language::es), keep_mixed), std::vector<Verdict>{Verdict::accepted});
}

TEST(Rejection, DuplicatesAndSurplusAreCountedAfterTheChecks) {
  const std::string other = "<think>Then 4 times 5 is 20 and 3 more is 23.</think><answer>23</answer>";
  const std::string third = "<think>We need 4 times 5 first, so 20, and 23.</think><answer>23</answer>";
  const std::vector<Candidate> samples{candidate("<think>wrong</think><answer>7</answer>"), candidate(kGood), candidate(" " + kGood + "\n"),
                                       candidate(other), candidate(third)};
  EXPECT_EQ(judge_samples(samples, problem("23"), config(2)),
            (std::vector<Verdict>{Verdict::incorrect, Verdict::accepted, Verdict::duplicate, Verdict::accepted, Verdict::surplus}));
}

TEST(Rejection, RepeatedNgramFraction) {
  EXPECT_DOUBLE_EQ(repeated_ngram_fraction("a b c d e f", 2), 0.0);
  EXPECT_DOUBLE_EQ(repeated_ngram_fraction("a b a b a b", 2), 3.0 / 5.0);  // ab ba ab ba ab: 3 repeats
  EXPECT_DOUBLE_EQ(repeated_ngram_fraction("x x x x x", 1), 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(repeated_ngram_fraction("too short", 4), 0.0);
}

TEST(Rejection, NonReasoningMixRatio) {
  EXPECT_EQ(non_reasoning_count(600000, 0.25), 200000);  // R1's 600k + 200k
  EXPECT_EQ(non_reasoning_count(3, 0.25), 1);
  EXPECT_EQ(non_reasoning_count(0, 0.25), 0);
  EXPECT_EQ(non_reasoning_count(10, 0.0), 0);
  EXPECT_EQ(non_reasoning_count(1, 0.5), 1);
}

TEST(Rejection, SftRowIsOneJsonLineTheSftLoaderReads) {
  const std::string row = sft_row("What is 3 + 4 * 5?", kGood, {{"source", "synthetic/arithmetic"}, {"prompt_id", 42}, {"sample", 1}});
  ASSERT_EQ(row.back(), '\n');
  EXPECT_EQ(row.find('\n'), row.size() - 1);
  const auto j = nlohmann::json::parse(row);
  EXPECT_EQ(j["prompt"], "What is 3 + 4 * 5?");
  EXPECT_EQ(j["response"], kGood);
  EXPECT_EQ(j["provenance"]["prompt_id"], 42);
  // The same inputs give the same bytes (the dataset is compared across rank layouts).
  EXPECT_EQ(row, sft_row("What is 3 + 4 * 5?", kGood, {{"sample", 1}, {"prompt_id", 42}, {"source", "synthetic/arithmetic"}}));
  // A sampled byte sequence that is not UTF-8 still makes a JSON line.
  const auto bad = nlohmann::json::parse(sft_row("q", std::string("bad \xff byte"), nlohmann::json::object()));
  EXPECT_EQ(bad["response"], "bad \xef\xbf\xbd byte");  // U+FFFD
}

TEST(Rejection, AcceptedRowsPassTheVerifier) {
  const Problem p = problem("23");
  const std::vector<Candidate> samples{candidate(kGood), candidate("<think>so</think><answer>22</answer>"),
                                       candidate("<think>so</think><answer>23.0</answer>")};
  const std::vector<Verdict> v = judge_samples(samples, p, config());
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (v[i] == Verdict::accepted) {
      EXPECT_EQ(accuracy_reward(samples[i].response, p), 1);
      EXPECT_EQ(format_reward(samples[i].response), 1);
    }
  EXPECT_EQ(v, (std::vector<Verdict>{Verdict::accepted, Verdict::incorrect, Verdict::accepted}));
}

// Rejection sampling's verdict on each sampled completion (R1's ~600k reasoning set): keep correct,
// well-formed, single-language, non-repetitive completions of bounded length, once each, a few per prompt;
// and the rows of the SFT dataset it writes.
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/rl.hpp"
#include "data/reasoning_world.hpp"

namespace r1 {

// Why a completion was not kept; the first failing check in this order is the one recorded.
enum class Verdict { accepted, truncated, overlong, malformed, incorrect, mixed_language, repetitive, duplicate, surplus };
inline constexpr std::array kAllVerdicts = {Verdict::accepted, Verdict::truncated, Verdict::overlong,
                                            Verdict::malformed, Verdict::incorrect, Verdict::mixed_language,
                                            Verdict::repetitive, Verdict::duplicate, Verdict::surplus};
const char* verdict_name(Verdict v);

// Share of a text's word n-grams (words split at whitespace) that repeat an earlier n-gram of it;
// 0 when it has fewer than n words. A degenerate loop tends to 1.
double repeated_ngram_fraction(std::string_view text, std::int64_t n);

// One sampled response: the decoded text without the end-of-sequence token.
struct Candidate {
  std::string response;
  std::int64_t tokens = 0;
  bool truncated = false;
};

// The verdict on each of one prompt's samples, in sample order: each sample is checked on its own, then
// an accepted response identical (after trimming) to an earlier accepted one is a duplicate, and
// accepted responses beyond keep_per_prompt are surplus. Correctness is the rule-based verifier
// (accuracy_reward); a mixed-language reasoning is one with classified words whose target-language
// share is below the threshold (a reasoning with no classified words, e.g. pure arithmetic, passes).
std::vector<Verdict> judge_samples(const std::vector<Candidate>& samples, const Problem& p, const RejectionConfig& c);

// Non-reasoning rows to add to `reasoning` accepted rows so that they make `fraction` of the dataset
// (R1: ~200k of ~800k = 0.25), rounded to nearest.
std::int64_t non_reasoning_count(std::int64_t reasoning, double fraction);

// One line of the SFT dataset (newline included): {"prompt", "response", "provenance"}; the SFT
// stage's JSONL loader reads the first two.
std::string sft_row(std::string_view prompt, std::string_view response, const nlohmann::json& provenance);

}  // namespace r1

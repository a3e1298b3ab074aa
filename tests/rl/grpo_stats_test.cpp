// A GRPO step's metrics record (src/rl/grpo_stats.hpp): every key of metrics.jsonl from the summed
// statistics, rank 0's own generation time and longest completion, and the preference keys only in runs
// and steps that have them.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "rl/grpo_stats.hpp"

using namespace r1;

namespace {

// Two ranks' worth of a step: 8 completions, 6 of them reasoning ones, 2 general ones.
GrpoStepStats summed() {
  GrpoStepStats s;
  RolloutStats& r = s.rollout;
  r.completions = 8;
  r.reward_sum = 4;
  r.reward_squares = 3;
  r.accuracy = 3;
  r.format = 6;
  r.language = 1.5;
  r.length_sum = 200;
  r.truncated = 2;
  r.reflections = 4;
  r.entropy = 50;
  r.uniform_groups = 1;
  r.generate_s = 6;
  r.reasoning_n = 6;
  r.reasoning_sum = 3;
  r.general_n = 2;
  r.general_sum = 1;
  r.helpfulness_sum = 0.5;
  r.harmlessness_sum = -1;
  s.loss = {.loss = 0.25, .tokens = 100, .ratio_sum = 101, .kl_sum = 2, .clipped_low = 3, .clipped_high = 2};
  return s;
}

GrpoStepStats mine() {
  GrpoStepStats s;
  s.rollout.generate_s = 2;
  s.rollout.length_max = 48;
  return s;
}

std::set<std::string> keys(const nlohmann::json& rec) {
  std::set<std::string> k;
  for (const auto& [key, value] : rec.items()) k.insert(key);
  return k;
}

const std::set<std::string> kEveryStep = {
    "step", "reward_mean", "reward_std", "accuracy", "format_rate", "language_consistency", "response_length_mean",
    "response_length_max_rank0", "truncated_fraction", "loss", "ratio_mean", "kl_mean", "clip_fraction",
    "uniform_groups", "lr", "grad_norm", "reflection_words_per_response", "entropy", "generate_s", "step_s",
    "rollout_share", "generated_tokens_per_s", "mismatch_abs_mean", "mismatch_abs_max", "mismatch_kl_k3",
    "mismatch_over_0_1", "rerouted_share", "is_weight_mean", "is_capped_fraction", "is_masked_fraction",
    "peak_bytes_rollout", "peak_bytes_scoring", "peak_bytes_update"};

}  // namespace

TEST(GrpoRecord, MeansComeFromTheSumsAndRankZerosOwnTimes) {
  const nlohmann::json rec = grpo_record(mine(), summed(), {.step = 7, .lr = 1e-4, .grad_norm = 0.5, .step_s = 4, .replicas = 2,
                                                             .memory = {.rollout = 3e9, .scoring = 1e9, .update = 2e9}});
  EXPECT_EQ(keys(rec), kEveryStep);
  EXPECT_EQ(rec["peak_bytes_rollout"].get<double>(), 3e9);  // the phases' peaks as given (the stage's max over DP)
  EXPECT_EQ(rec["peak_bytes_scoring"].get<double>(), 1e9);
  EXPECT_EQ(rec["peak_bytes_update"].get<double>(), 2e9);
  EXPECT_EQ(rec["step"], 7);
  EXPECT_DOUBLE_EQ(rec["reward_mean"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rec["reward_std"].get<double>(), std::sqrt(3.0 / 8 - 0.25));
  EXPECT_DOUBLE_EQ(rec["accuracy"].get<double>(), 0.5);  // over the reasoning completions
  EXPECT_DOUBLE_EQ(rec["format_rate"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(rec["language_consistency"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(rec["response_length_mean"].get<double>(), 25);
  EXPECT_DOUBLE_EQ(rec["response_length_max_rank0"].get<double>(), 48);
  EXPECT_DOUBLE_EQ(rec["truncated_fraction"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(rec["loss"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(rec["ratio_mean"].get<double>(), 1.01);
  EXPECT_DOUBLE_EQ(rec["kl_mean"].get<double>(), 0.02);
  EXPECT_DOUBLE_EQ(rec["clip_fraction"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(rec["reflection_words_per_response"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rec["entropy"].get<double>(), 0.25);  // per completion token
  EXPECT_DOUBLE_EQ(rec["generate_s"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(rec["rollout_share"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rec["generated_tokens_per_s"].get<double>(), 200.0 / 3);  // over the replicas' mean generate time
}

TEST(GrpoRecord, PreferenceKeysOnlyInPreferenceRunsAndGeneralSumsOnlyWithGeneralPrompts) {
  const GrpoStepInfo run{.replicas = 2, .group_size = 2, .preference_run = true, .helpfulness = true};
  GrpoStepStats reasoning_only = summed();
  reasoning_only.rollout.general_n = 0;
  std::set<std::string> want = kEveryStep;
  want.insert({"preference_step", "reasoning_reward_mean"});
  const nlohmann::json before = grpo_record(mine(), reasoning_only, run);
  EXPECT_EQ(keys(before), want);
  EXPECT_EQ(before["preference_step"], false);
  EXPECT_DOUBLE_EQ(before["reasoning_reward_mean"].get<double>(), 0.5);

  GrpoStepInfo step = run;
  step.preference_step = true;
  const nlohmann::json rec = grpo_record(mine(), summed(), step);
  want.insert({"general_prompts", "general_reward_mean", "helpfulness_mean"});
  EXPECT_EQ(keys(rec), want);
  EXPECT_DOUBLE_EQ(rec["general_prompts"].get<double>(), 1);  // general completions / group size
  EXPECT_DOUBLE_EQ(rec["general_reward_mean"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rec["helpfulness_mean"].get<double>(), 0.25);

  step.harmlessness = true;
  EXPECT_DOUBLE_EQ(grpo_record(mine(), summed(), step)["harmlessness_mean"].get<double>(), -0.5);
  EXPECT_EQ(keys(grpo_record(mine(), summed(), {.replicas = 2})), kEveryStep);
}

TEST(GrpoRecord, ProgressLineShowsTheRecordsMeans) {
  const nlohmann::json rec = grpo_record(mine(), summed(), {.step = 3, .step_s = 4, .replicas = 2});
  const std::string line = grpo_progress_line(rec, summed(), {.step = 3, .total_steps = 10, .elapsed_s = 12, .steps_done = 3});
  EXPECT_NE(line.find("step 3/10"), std::string::npos) << line;
  EXPECT_NE(line.find("reward 0.5000"), std::string::npos) << line;
  EXPECT_NE(line.find("  accuracy 0.5  format 1  length 25  kl 0.02"), std::string::npos) << line;
}

TEST(GrpoRecord, MismatchMeansOverTheComparedTokensAndRerouteSharesPerLayer) {
  GrpoStepStats s = summed();
  s.mismatch = {.tokens = 50, .abs_sum = 5, .k3_sum = 0.5, .over_0_1 = 10, .abs_max = 0.75,
                .routed = {50, 40}, .rerouted = {5, 0}};
  s.loss.is_capped = 20;
  s.loss.is_weight_sum = 90;
  s.loss.is_masked = 25;
  const nlohmann::json rec = grpo_record(mine(), s, {.replicas = 2});
  EXPECT_DOUBLE_EQ(rec["mismatch_abs_mean"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(rec["mismatch_abs_max"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(rec["mismatch_kl_k3"].get<double>(), 0.01);
  EXPECT_DOUBLE_EQ(rec["mismatch_over_0_1"].get<double>(), 0.2);
  EXPECT_EQ(rec["rerouted_share"], nlohmann::json::array({0.1, 0.0}));
  EXPECT_DOUBLE_EQ(rec["is_weight_mean"].get<double>(), 0.9);      // over the 100 loss tokens
  EXPECT_DOUBLE_EQ(rec["is_capped_fraction"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(rec["is_masked_fraction"].get<double>(), 0.2);  // of the 125 tokens before masking
}

#include <gtest/gtest.h>

#include <set>
#include <string_view>

#include "deck/validate.hpp"
#include "deck_test_util.hpp"
#include "model/config.hpp"

namespace r1 {
namespace {

using test::source_dir;

Deck preset(const std::string& name) { return Deck::parse("[model]\npreset = " + name + "\n", "p.deck"); }

TEST(Presets, EachValidatesAndSetsEveryModelKeyItself) {
  for (const char* name : {"tiny", "small", "bench", "v2-lite-16b", "v3-671b"}) {
    const Deck d = preset(name);
    EXPECT_NO_THROW(validate_deck(d, 1)) << name;
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != "model" || k.key == "preset") continue;
      EXPECT_EQ(d.origin(k.full_name()).kind, DeckOrigin::Kind::preset) << name << " leaves " << k.key << " to its default";
    }
  }
}

// The grouped-query-attention presets set every key their architecture reads: not the MoE, MLA and MTP keys,
// and the llama3 RoPE keys only with rope_type = llama3.
TEST(Presets, GqaStudentsValidateAndSetEveryKeyTheyUse) {
  const std::set<std::string_view> unused{"n_dense_layers", "moe_inter_dim", "n_routed_experts", "n_shared_experts",
                                          "n_activated_experts", "n_expert_groups", "n_limited_groups", "score_func",
                                          "route_scale", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                                          "qk_rope_head_dim", "v_head_dim", "beta_fast", "beta_slow", "mscale",
                                          "mtp_depth", "mtp_lambda", "bias_update_gamma", "seq_aux_alpha"};
  const std::set<std::string_view> llama3{"rope_factor", "original_seq_len", "low_freq_factor", "high_freq_factor"};
  for (const char* name : {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "small-qwen2", "qwen2.5-1.5b", "qwen2.5-7b", "llama-3.1-8b"}) {
    const Deck d = preset(name);
    EXPECT_NO_THROW(validate_deck(d, 1)) << name;
    const ModelConfig& m = d.config().model;
    EXPECT_TRUE(m.gqa() && m.dense) << name;
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != "model" || k.key == "preset" || unused.count(k.key) > 0) continue;
      if (m.rope_type != RopeType::llama3 && llama3.count(k.key) > 0) continue;
      EXPECT_EQ(d.origin(k.full_name()).kind, DeckOrigin::Kind::preset) << name << " leaves " << k.key << " to its default";
    }
  }
}

ParamCount params_of(const std::string& name) { return count_params(preset(name).config().model); }

// The published sizes: Qwen2.5-1.5B 1.54B (tied embeddings), Qwen2.5-7B 7.62B, Llama-3.1-8B 8.03B.
TEST(Presets, GqaStudentsHaveThePublishedSizes) {
  EXPECT_NEAR(params_of("qwen2.5-1.5b").total, 1.544e9, 0.002e9);
  EXPECT_NEAR(params_of("qwen2.5-7b").total, 7.616e9, 0.002e9);
  EXPECT_NEAR(params_of("llama-3.1-8b").total, 8.030e9, 0.002e9);
}

// The GPU-scale chain's student: about half of what the `small` MoE teacher activates per token at the chain's
// byte vocabulary (22.8M).
TEST(Presets, SmallQwen2StudentIsHalfTheTeachersActivatedSize) {
  const ParamCount teacher = count_params(Deck::parse("[model]\npreset = small\nvocab_size = 264\n", "t.deck").config().model);
  EXPECT_NEAR(teacher.activated, 22.8e6, 0.05e6);
  EXPECT_NEAR(params_of("small-qwen2").activated / teacher.activated, 0.5, 0.03);
}

TEST(Presets, HaveTheirAdvertisedSizes) {
  EXPECT_EQ(params_of("tiny").total, 587520);
  EXPECT_NEAR(params_of("small").total, 101.6e6, 0.1e6);
  EXPECT_NEAR(params_of("v2-lite-16b").total, 15.7e9, 0.05e9);
  const ParamCount v3 = params_of("v3-671b");
  EXPECT_NEAR(v3.total, 671e9, 0.5e9);
  EXPECT_NEAR(v3.activated, 37e9, 0.5e9);
  EXPECT_NEAR(v3.mtp, 11.5e9, 0.5e9);  // the MTP module: one MoE block and its [2d -> d] projection
}

TEST(Presets, BenchIsTheDesignsPerformanceStandard) {
  const ModelConfig c = preset("bench").config().model;
  const ParamCount p = count_params(c);
  EXPECT_NEAR(p.total, 2.25e9, 0.01e9);
  EXPECT_NEAR(p.activated, 0.54e9, 0.005e9);
  // FLOPs/token = 6 x activated + 6 x layers x seq x heads x (d_qk + d_v) at sequence 4096.
  EXPECT_NEAR(train_flops_per_token(c, 4096), 3.74e9, 0.01e9);
}

TEST(ExampleDecks, ValidateOnTheRankCountsTheyAreWrittenFor) {
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/quickstart/self_check.deck"), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/00_pretrain_tiny.deck"), 2));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/bench/pretrain_bench.deck"), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/01_r1zero_tiny.deck",
                                           {"checkpoint.load=" + (source_dir() / "tests").string()}), 2));
  // The GPU-scale R1-Zero pair and its evaluation, on one GPU.
  const std::vector<std::string> parent{"checkpoint.load=" + (source_dir() / "tests").string()};
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/00_pretrain_small.deck"), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/01_r1zero_small.deck", parent), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/09_evaluate_small.deck", parent), 1));
  // The rest of the GPU-scale chain (inputs/pipeline/small.plan), with stand-ins for the parents, data and
  // reward models that the earlier phases write.
  const std::string data = "data.train_path=" + (source_dir() / "tests/data/fixtures/gsm8k_tiny.jsonl").string();
  const std::string rm = (source_dir() / "tests").string();
  const std::vector<std::pair<std::string, std::vector<std::string>>> chain{
      {"02a_cold_start_data", parent},
      {"02_cold_start", {parent[0], data}},
      {"03_reasoning_rl", parent},
      {"04_rejection_sampling", parent},
      {"05_sft", {parent[0], data}},
      {"06_reward_model", parent},
      {"06b_safety_reward_model", parent},
      {"07_rl_all", {parent[0], "reward.helpfulness_model=" + rm, "reward.harmlessness_model=" + rm}},
      {"08a_distill_data", parent},
      {"00s_pretrain_student", {}},
      {"08_distill", {parent[0], data}},
      {"08r_rl_student", parent}};
  for (const auto& [phase, sets] : chain)
    EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline" / (phase + "_small.deck"), sets), 1)) << phase;
  // The evaluation by difficulty level, of the teacher and (with its preset) of the Qwen2 students.
  const auto levels = source_dir() / "inputs/pipeline/09_evaluate_levels_small.deck";
  EXPECT_NO_THROW(validate_deck(Deck::load(levels, parent), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(levels, {parent[0], "model.preset=small-qwen2"}), 1));
}

}  // namespace
}  // namespace r1

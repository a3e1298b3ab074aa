// Continuous batching over the paged KV cache (tiny MLA models with q_lora 0 and 8, and the tiny-qwen2 GQA
// preset; CPU, f32) against the contiguous cache: the same completions -- tokens, stop reasons, routing,
// log-probs within 1e-5 -- at block sizes 1, 16 and odd ones (3, 5, 7); a token budget so small that decode steps run
// out of blocks preempts the newest sequences, resumes them by re-prefilling, and still gives the same
// completions; the pool's blocks follow the sequences' lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "generate/engine.hpp"
#include "generate/gqa_models.hpp"
#include "support/tiny_model.hpp"

using namespace r1;

namespace {
struct TinyModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  explicit TinyModel(std::int64_t q_lora)
      : c(test::tiny_model({.n_layers = 3, .n_heads = 3, .q_lora_rank = q_lora, .v_head_dim = 6, .max_seq_len = 32, .init_std = 0.3})),
        model(c, params) {
    params.initialize(7, c.init_std);
  }
};

struct GqaModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  GqaModel() : c(test::gqa_preset("tiny-qwen2")), model(c, params) { test::init_gqa_weights(params); }
};

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 17, 5}, {9, 1, 22, 30, 4, 4, 11}, {2, 38, 7, 19, 25}, {8}, {12, 13, 14, 15}};
constexpr std::int64_t kSamples = 3;

SamplingParams params(std::int64_t block_size, std::int64_t budget = 0) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 20;
  p.max_new_tokens = 14;
  p.stop_ids = {5, 6};
  p.seed = 321;
  p.record_experts = true;
  p.kv_block_size = block_size;
  p.kv_cache_tokens = budget;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(kPrompts.size()) * kSamples; ++i)
    p.sequence_limits.push_back(1 + (i * 7) % 13);  // long and short sequences interleaved, some of one token
  return p;
}

void expect_same(const std::vector<Completion>& got, const std::vector<Completion>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(what + ", completion " + std::to_string(i));
    EXPECT_EQ(got[i].tokens, want[i].tokens);
    EXPECT_EQ(got[i].finished_by, want[i].finished_by);
    EXPECT_EQ(got[i].experts, want[i].experts);
    ASSERT_EQ(got[i].logprobs.size(), want[i].tokens.size());
    ASSERT_EQ(got[i].policy_logprobs.size(), want[i].tokens.size());
    for (std::size_t k = 0; k < want[i].tokens.size(); ++k) {
      EXPECT_NEAR(got[i].logprobs[k], want[i].logprobs[k], 1e-5) << "token " << k;
      EXPECT_NEAR(got[i].policy_logprobs[k], want[i].policy_logprobs[k], 1e-5) << "token " << k;
    }
  }
}
}  // namespace

TEST(PagedCache, GivesTheContiguousCompletionsAtEveryBlockSize) {
  for (std::int64_t q_lora : {0, 8}) {
    SCOPED_TRACE("q_lora " + std::to_string(q_lora));
    const TinyModel t(q_lora);
    const auto want = generate(t.model, kPrompts, kSamples, params(0), 4);
    for (std::int64_t bs : {1, 5, 16})
      for (std::int64_t max_batch : {3, 8}) {
        GenerateStats st;
        expect_same(generate(t.model, kPrompts, kSamples, params(bs), max_batch, 0, &st), want,
                    "block size " + std::to_string(bs) + ", max_batch " + std::to_string(max_batch));
        EXPECT_EQ(st.block_size, bs);
        EXPECT_EQ(st.preemptions, 0) << "the default budget holds every slot at full length";
        EXPECT_GT(st.peak_blocks, 0);
        EXPECT_LE(st.peak_blocks, st.pool_blocks);
      }
  }
}

TEST(PagedCache, ATightBudgetPreemptsTheNewestAndKeepsTheCompletions) {
  const TinyModel t(8);
  const auto want = generate(t.model, kPrompts, kSamples, params(0), 8);
  for (std::int64_t bs : {1, 2, 5}) {
    GenerateStats st;
    // 20 tokens for 8 slots: little more than the longest sequence.
    expect_same(generate(t.model, kPrompts, kSamples, params(bs, 20), 8, 0, &st), want,
                "budget 20, block size " + std::to_string(bs));
    EXPECT_GT(st.preemptions, 0) << "block size " << bs;
    EXPECT_EQ(st.resumed, st.preemptions) << "every preempted sequence is re-prefilled once per preemption";
    // The budget in whole blocks, at least the longest sequence's 16 rows (7-token prompt + 10 new - 1).
    EXPECT_EQ(st.pool_blocks, std::max<std::int64_t>(20 / bs, (16 + bs - 1) / bs));
    EXPECT_LE(st.peak_blocks, st.pool_blocks);
  }
}

TEST(PagedCache, GqaGivesTheContiguousCompletionsAndSurvivesPreemption) {
  GqaModel t;
  SamplingParams p = params(0);
  p.record_experts = false;
  p.stop_ids = {0, 1, 2};
  const auto want = generate(t.model, kPrompts, kSamples, p, 4);
  for (std::int64_t bs : {1, 3, 7}) {
    p.kv_block_size = bs;
    p.kv_cache_tokens = 0;
    expect_same(generate(t.model, kPrompts, kSamples, p, 6), want, "GQA, block size " + std::to_string(bs));
    p.kv_cache_tokens = 21;
    GenerateStats st;
    expect_same(generate(t.model, kPrompts, kSamples, p, 6, 0, &st), want, "GQA, budget 21, block size " + std::to_string(bs));
    EXPECT_GT(st.preemptions, 0) << "block size " << bs;
  }
}

TEST(PagedCache, GreedyLongSequencesAtTheContextLimitMatchTheStaticEngine) {
  const TinyModel t(0);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_new_tokens = 20;
  std::vector<std::vector<std::int32_t>> prompts = kPrompts;
  prompts.push_back(std::vector<std::int32_t>(30, 3));  // 30 tokens + 2 new = max_seq_len 32
  p.batching = Batching::static_batch;
  const auto want = generate(t.model, prompts, kSamples, p, 2);
  p.batching = Batching::continuous;
  p.kv_block_size = 4;
  p.kv_cache_tokens = 40;  // fewer than two of the longest sequences' 31 rows
  GenerateStats st;
  const auto got = generate(t.model, prompts, kSamples, p, 16, 0, &st);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].tokens, want[i].tokens) << "completion " << i;
  EXPECT_GT(st.preemptions, 0);
  EXPECT_EQ(st.pool_blocks, 10);
}

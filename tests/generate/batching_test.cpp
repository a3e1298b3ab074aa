// Continuous batching against the static engine (tiny MoE models, CPU, f32): refilled slots and prompts
// prefilled once for all their samples give the static engine's completions token for token -- the same
// tokens, stop reasons and routing, log-probs within 1e-5 (prefills of different batches pad differently)
// -- at max_batch 1, 3 and 8, with per-sequence limits, stop ids and the rank's first prompt index; the
// continuous engine decodes fuller batches in fewer steps and prefills each prompt once. Over the paged KV
// cache (the tiny MLA models and the tiny-qwen2 GQA preset) the same completions as over the contiguous one
// at block sizes 1, 16 and odd ones (3, 5, 7); a token budget so small that decode steps run out of blocks
// preempts the newest sequences, resumes them by re-prefilling, and still gives the same completions; and
// prefills in chunks of 1, 3 and 64 tokens (decode-path rows; over the paged cache in the same passes as the
// running sequences' decode steps) give them too.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/error.hpp"
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

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 17, 5}, {9, 1, 22, 30, 4, 4, 11}, {2, 38, 7, 19, 25}, {8}, {12, 13, 14, 15}};
constexpr std::int64_t kSamples = 3;

SamplingParams params(Batching batching) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 20;
  p.max_new_tokens = 14;
  p.stop_ids = {5, 6};
  p.seed = 321;
  p.record_experts = true;
  p.batching = batching;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(kPrompts.size()) * kSamples; ++i)
    p.sequence_limits.push_back(1 + (i * 7) % 13);  // long and short sequences interleaved, some of one token
  return p;
}

void expect_same(const std::vector<Completion>& got, const std::vector<Completion>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(what + ", completion " + std::to_string(i));
    EXPECT_EQ(got[i].prompt_index, want[i].prompt_index);
    EXPECT_EQ(got[i].sample_index, want[i].sample_index);
    EXPECT_EQ(got[i].tokens, want[i].tokens);
    EXPECT_EQ(got[i].finished_by, want[i].finished_by);
    EXPECT_EQ(got[i].experts, want[i].experts);
    ASSERT_EQ(got[i].logprobs.size(), want[i].tokens.size());
    ASSERT_EQ(got[i].policy_logprobs.size(), want[i].tokens.size());
    ASSERT_EQ(got[i].entropies.size(), want[i].tokens.size());
    for (std::size_t k = 0; k < want[i].tokens.size(); ++k) {
      EXPECT_NEAR(got[i].logprobs[k], want[i].logprobs[k], 1e-5) << "token " << k;
      EXPECT_NEAR(got[i].policy_logprobs[k], want[i].policy_logprobs[k], 1e-5) << "token " << k;
      EXPECT_NEAR(got[i].entropies[k], want[i].entropies[k], 1e-5) << "token " << k;
    }
  }
}
}  // namespace

TEST(Batching, ContinuousGivesTheStaticCompletionsAtEveryBatchSize) {
  for (std::int64_t q_lora : {0, 8}) {
    SCOPED_TRACE("q_lora " + std::to_string(q_lora));
    const TinyModel t(q_lora);
    const auto want = generate(t.model, kPrompts, kSamples, params(Batching::static_batch), 4);
    std::size_t stopped = 0, one_token = 0;
    for (const auto& c : want) {
      stopped += c.finished_by == FinishReason::stop;
      one_token += c.tokens.size() == 1;
    }
    EXPECT_GE(stopped, 1u) << "stop ids should end some sequences early";
    EXPECT_GE(one_token, 1u) << "some sequences should finish at their first draw";
    for (std::int64_t max_batch : {1, 3, 8}) {
      expect_same(generate(t.model, kPrompts, kSamples, params(Batching::static_batch), max_batch), want,
                  "static, max_batch " + std::to_string(max_batch));
      expect_same(generate(t.model, kPrompts, kSamples, params(Batching::continuous), max_batch), want,
                  "continuous, max_batch " + std::to_string(max_batch));
    }
  }
}

TEST(Batching, ARanksFirstPromptIndexKeysItsDrawsUnderContinuousBatching) {
  const TinyModel t(0);
  SamplingParams p = params(Batching::continuous);
  const auto whole = generate(t.model, kPrompts, kSamples, p, 3);
  p.sequence_limits.erase(p.sequence_limits.begin(), p.sequence_limits.begin() + 2 * kSamples);
  const auto tail = generate(t.model, {kPrompts.begin() + 2, kPrompts.end()}, kSamples, p, 5, 2);
  ASSERT_EQ(tail.size(), whole.size() - 2 * kSamples);
  for (std::size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i].tokens, whole[i + 2 * kSamples].tokens) << i;
}

TEST(Batching, RefilledSlotsDecodeFullerBatchesInFewerStepsAndPromptsArePrefilledOnce) {
  const TinyModel t(0);
  GenerateStats fixed, cont;
  generate(t.model, kPrompts, kSamples, params(Batching::static_batch), 3, 0, &fixed);
  generate(t.model, kPrompts, kSamples, params(Batching::continuous), 3, 0, &cont);
  const auto sequences = static_cast<std::int64_t>(kPrompts.size()) * kSamples;
  EXPECT_EQ(fixed.prefilled, sequences);  // every sample prefilled on its own
  EXPECT_EQ(cont.prefilled, static_cast<std::int64_t>(kPrompts.size()));
  EXPECT_EQ(fixed.prefills, sequences / 3);  // one per batch of 3
  EXPECT_GT(cont.prefills, 1) << "freed slots are refilled while others decode";
  EXPECT_LT(cont.decode_steps, fixed.decode_steps);
  const double fixed_fill = double(fixed.slot_steps) / double(fixed.decode_steps);
  const double cont_fill = double(cont.slot_steps) / double(cont.decode_steps);
  EXPECT_GT(cont_fill, fixed_fill) << "mean live slots per decode step";
  EXPECT_LE(cont_fill, 3.0);
  EXPECT_EQ(cont.idle_passes, 0);  // one rank: no lockstep group
  // Every token but a sequence's first comes from a decode step: the slot steps count them, in both modes.
  std::int64_t tokens = 0;
  for (const auto& c : generate(t.model, kPrompts, kSamples, params(Batching::continuous), 3)) tokens += static_cast<std::int64_t>(c.tokens.size());
  EXPECT_EQ(cont.slot_steps, tokens - sequences);
  EXPECT_EQ(fixed.slot_steps, tokens - sequences);
}

TEST(Batching, SequenceLimitsAreChecked) {
  const TinyModel t(0);
  SamplingParams p = params(Batching::continuous);
  p.sequence_limits.pop_back();
  EXPECT_THROW(generate(t.model, kPrompts, kSamples, p, 3), Error);
  p = params(Batching::continuous);
  p.sequence_limits[4] = 0;
  EXPECT_THROW(generate(t.model, kPrompts, kSamples, p, 3), Error);
  p = params(Batching::continuous);
  p.max_new_tokens = 2;  // bounds every sequence_limits entry
  for (const auto& c : generate(t.model, kPrompts, kSamples, p, 3)) EXPECT_LE(c.tokens.size(), 2u);
}

TEST(Batching, GreedySamplesOfASharedPrefillAgreeAndTheContextStillBoundsThem) {
  const TinyModel t(8);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_new_tokens = 10;
  std::vector<std::vector<std::int32_t>> prompts = kPrompts;
  prompts.push_back(std::vector<std::int32_t>(30, 3));  // 30 tokens + 2 new = max_seq_len 32
  p.batching = Batching::static_batch;
  const auto want = generate(t.model, prompts, kSamples, p, 2);
  p.batching = Batching::continuous;
  // Fewer slots than a prompt's samples, more slots than sequences, and 16 slots over a paged cache of 10
  // blocks of 4 (40 tokens: fewer than two of the longest sequence's 31 rows), which preempts.
  for (std::int64_t max_batch : {2, 64, 16}) {
    if (max_batch == 16) {
      p.kv_block_size = 4;
      p.kv_cache_tokens = 40;
    }
    GenerateStats st;
    const auto got = generate(t.model, prompts, kSamples, p, max_batch, 0, &st);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].tokens, want[i].tokens) << "max_batch " << max_batch << " completion " << i;
      EXPECT_EQ(got[i].tokens, got[i - i % kSamples].tokens) << "greedy samples of one prompt";
    }
    EXPECT_EQ(got.back().tokens.size(), 2u);
    EXPECT_EQ(got.back().finished_by, FinishReason::length);
    if (max_batch == 16) {
      EXPECT_EQ(st.pool_blocks, 10);
      EXPECT_GT(st.preemptions, 0);
    }
  }
}

namespace {
// Continuous batching over a paged cache of `block_size` tokens a block (0: contiguous) within `budget`
// tokens a layer (0: auto).
SamplingParams paged(std::int64_t block_size, std::int64_t budget = 0) {
  SamplingParams p = params(Batching::continuous);
  p.kv_block_size = block_size;
  p.kv_cache_tokens = budget;
  return p;
}

struct GqaModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  GqaModel() : c(test::gqa_preset("tiny-qwen2")), model(c, params) { test::init_gqa_weights(params); }
};
}  // namespace

TEST(PagedCache, GivesTheContiguousCompletionsAtEveryBlockSize) {
  for (std::int64_t q_lora : {0, 8}) {
    SCOPED_TRACE("q_lora " + std::to_string(q_lora));
    const TinyModel t(q_lora);
    const auto want = generate(t.model, kPrompts, kSamples, paged(0), 4);
    for (std::int64_t bs : {1, 5, 16})
      for (std::int64_t max_batch : {3, 8}) {
        GenerateStats st;
        expect_same(generate(t.model, kPrompts, kSamples, paged(bs), max_batch, 0, &st), want,
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
  const auto want = generate(t.model, kPrompts, kSamples, paged(0), 8);
  for (std::int64_t bs : {1, 2, 5}) {
    GenerateStats st;
    // 20 tokens for 8 slots: little more than the longest sequence.
    expect_same(generate(t.model, kPrompts, kSamples, paged(bs, 20), 8, 0, &st), want,
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
  SamplingParams p = paged(0);
  p.record_experts = false;  // a dense model
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
    p.prefill_chunk = 4;  // chunks mixed into decode steps, under preemption
    expect_same(generate(t.model, kPrompts, kSamples, p, 6, 0, &st), want, "GQA, chunks of 4, block size " + std::to_string(bs));
    EXPECT_GT(st.mixed_steps, 0) << "block size " << bs;
    p.prefill_chunk = 0;
  }
}

TEST(ChunkedPrefill, GivesTheWholePrefillsCompletions) {
  const TinyModel t(8);
  const auto want = generate(t.model, kPrompts, kSamples, paged(0), 4);
  GenerateStats whole;
  generate(t.model, kPrompts, kSamples, paged(16), 4, 0, &whole);
  for (std::int64_t chunk : {1, 3, 64})
    for (const auto& [bs, budget] : {std::pair<std::int64_t, std::int64_t>{0, 0}, {16, 0}, {2, 20}}) {
      const std::string what = "chunk " + std::to_string(chunk) + ", block size " + std::to_string(bs) + ", budget " +
                               std::to_string(budget);
      SamplingParams p = paged(bs, budget);
      p.prefill_chunk = chunk;
      GenerateStats st;
      expect_same(generate(t.model, kPrompts, kSamples, p, 4, 0, &st), want, what);
      EXPECT_EQ(st.prefilled, whole.prefilled) << what << ": each prompt still prefilled once";
      if (chunk == 1) {
        EXPECT_GE(st.prefills, 20) << what << ": a pass per prompt token (20 of them)";
      }
      if (budget > 0) {
        EXPECT_GT(st.preemptions, 0) << what;
      }
      // Paged, the chunks of prompts admitted while others run share their decode steps' passes.
      if (bs > 0) {
        EXPECT_GT(st.mixed_steps, 0) << what;
      } else {
        EXPECT_EQ(st.mixed_steps, 0) << what << ": a contiguous cache alternates chunks and decode steps";
      }
    }
}

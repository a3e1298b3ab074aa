// The generation engine on tiny models (CPU, f32; q_lora 0 and > 0, YaRN, dense and MoE layers): prefill and
// decode over the MLA KV cache reproduce the training forward's logits, greedy generation is the argmax of
// repeated full forwards, completions do not depend on the batch size, stop ids and length limits end
// sequences, and the returned log-probs are the training forward's (the policy log-probs untempered, with the
// routing of every fed token kept on request).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "generate/engine.hpp"
#include "generate/logit_checks.hpp"
#include "support/tiny_model.hpp"

using namespace r1;

namespace {
using test::argmax_row;
using test::to_host;
using test::rel_error;

struct Variant {
  const char* name;
  std::int64_t q_lora;
  bool yarn, dense;
};
const Variant kVariants[] = {{"q_lora0_moe", 0, false, false}, {"q_lora8_yarn_moe", 8, true, false}, {"dense_yarn", 6, true, true}};

ModelConfig tiny(const Variant& v) {
  ModelConfig c = test::tiny_model(
      {.n_layers = 3, .n_heads = 3, .q_lora_rank = v.q_lora, .v_head_dim = 6, .max_seq_len = 32, .init_std = 0.3});
  c.rope_factor = v.yarn ? 4.0 : 1.0;
  c.original_seq_len = v.yarn ? 8 : 4096;  // YaRN is active when max_seq_len > original_seq_len
  c.dense = v.dense;
  return c;
}

struct TinyModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  explicit TinyModel(const Variant& v) : c(tiny(v)), model(c, params) { params.initialize(7, c.init_std); }
};

// The training forward over one sequence: logits [S, V] (host) and -CE of each next token.
struct Full {
  Tensor logits;
  std::vector<float> token_logprob;  // at position s: log p(seq[s + 1])
};
Full full_forward(const Model& m, const std::vector<std::int32_t>& seq) {
  TokenBatch tb;
  tb.seq = static_cast<std::int64_t>(seq.size());
  tb.ids = seq;
  for (std::size_t s = 0; s < seq.size(); ++s) tb.targets.push_back(s + 1 < seq.size() ? seq[s + 1] : -1);
  ForwardResult r;
  auto saved = m.forward(m.upload(tb), r);
  Full f{to_host(Model::logits(*saved)), {}};
  const Tensor losses = to_host(Model::token_losses(*saved));
  for (std::size_t s = 0; s + 1 < seq.size(); ++s) f.token_logprob.push_back(-losses.data<float>()[s]);
  return f;
}

double log_softmax(const Tensor& logits, std::int64_t row, std::int32_t tok, double temperature) {
  const std::int64_t V = logits.dim(1);
  const float* p = logits.data<float>() + row * V;
  double m = -1e300, z = 0;
  for (std::int64_t i = 0; i < V; ++i) m = std::max(m, p[i] / temperature);
  for (std::int64_t i = 0; i < V; ++i) z += std::exp(p[i] / temperature - m);
  return p[tok] / temperature - m - std::log(z);
}

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 17, 5}, {9, 1, 22, 30, 4, 4, 11}, {2, 38, 7, 19, 25}};
}  // namespace

TEST(Generate, DecodeLogitsEqualTheFullForwardAtEveryStep) {
  for (const Variant& v : kVariants) {
    SCOPED_TRACE(v.name);
    TinyModel t(v);
    const std::vector<std::vector<std::int32_t>> cont{{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1}, {0, 39, 20, 11, 13, 35, 6, 6}};
    test::expect_decode_equals_full_forward(t.model, kPrompts, cont,
                                            [&](const std::vector<std::int32_t>& seq) { return full_forward(t.model, seq).logits; },
                                            1e-5);
  }
}

// A decode asked for some slots' logits gives exactly those rows of the every-slot decode, in the order asked.
TEST(Generate, DecodeOfSomeSlotsLogitsGivesThoseRows) {
  TinyModel t(kVariants[1]);
  KvCache all = t.model.make_kv_cache(3, 16), some = t.model.make_kv_cache(3, 16);
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2, 3}, {4, 5}, {6, 7, 8, 9}};
  t.model.prefill(all, prompts);
  t.model.prefill(some, prompts);
  const std::vector<std::int32_t> next{10, 11, 12}, rows{2, 0};
  const Tensor full = to_host(t.model.decode(all, next)), part = to_host(t.model.decode(some, next, {}, &rows));
  ASSERT_EQ(part.shape(), Shape({2, full.dim(1)}));
  for (std::size_t k = 0; k < rows.size(); ++k)
    for (std::int64_t j = 0; j < full.dim(1); ++j)
      ASSERT_EQ(part.data<float>()[static_cast<std::int64_t>(k) * full.dim(1) + j], full.data<float>()[rows[k] * full.dim(1) + j])
          << "row " << k << " col " << j;
  EXPECT_EQ(some.lengths, all.lengths);
  const std::vector<std::int32_t> none, outside{3};
  EXPECT_THROW(t.model.decode(some, next, {}, &none), Error);
  EXPECT_THROW(t.model.decode(some, next, {}, &outside), Error);
}

TEST(Generate, GreedyIsTheArgmaxOfRepeatedFullForwards) {
  for (const Variant& v : kVariants) {
    SCOPED_TRACE(v.name);
    TinyModel t(v);
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_new_tokens = 10;
    const auto out = generate(t.model, kPrompts, 1, p, 8);
    ASSERT_EQ(out.size(), kPrompts.size());
    for (std::size_t i = 0; i < kPrompts.size(); ++i) {
      std::vector<std::int32_t> seq = kPrompts[i];
      for (std::size_t k = 0; k < 10; ++k) {
        const Full f = full_forward(t.model, seq);
        const std::int64_t last = static_cast<std::int64_t>(seq.size()) - 1;
        const std::int32_t tok = argmax_row(f.logits, last);
        ASSERT_LT(k, out[i].tokens.size());
        EXPECT_EQ(out[i].tokens[k], tok) << "prompt " << i << " token " << k;
        EXPECT_NEAR(out[i].logprobs[k], log_softmax(f.logits, last, tok, 1.0), 1e-5);
        seq.push_back(tok);
      }
      EXPECT_EQ(out[i].finished_by, FinishReason::length);
    }
  }
}

TEST(Generate, SameSeedGivesTheSameCompletionsWhateverTheBatchSize) {
  TinyModel t(kVariants[1]);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 12;
  p.top_p = 0.9f;
  p.max_new_tokens = 12;
  p.stop_ids = {5, 6};  // sequences end at different steps, so the batch shrinks as it runs
  p.seed = 1234;
  const auto ref = generate(t.model, kPrompts, 2, p, 6);
  bool some_stop = false, different_samples = false;
  for (std::int64_t max_batch : {1, 3, 4}) {
    const auto out = generate(t.model, kPrompts, 2, p, max_batch);
    ASSERT_EQ(out.size(), ref.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(out[i].prompt_index, static_cast<std::int64_t>(i / 2));
      EXPECT_EQ(out[i].sample_index, static_cast<std::int64_t>(i % 2));
      EXPECT_EQ(out[i].tokens, ref[i].tokens) << "max_batch " << max_batch << " completion " << i;
      EXPECT_EQ(out[i].finished_by, ref[i].finished_by);
      ASSERT_EQ(out[i].logprobs.size(), ref[i].logprobs.size());
      for (std::size_t k = 0; k < out[i].logprobs.size(); ++k) EXPECT_NEAR(out[i].logprobs[k], ref[i].logprobs[k], 1e-5);
    }
  }
  for (std::size_t i = 0; i < ref.size(); ++i) {
    some_stop |= ref[i].finished_by == FinishReason::stop;
    if (i % 2 == 1) different_samples |= ref[i].tokens != ref[i - 1].tokens;
  }
  EXPECT_TRUE(some_stop);
  EXPECT_TRUE(different_samples);
  p.seed = 1235;
  const auto other = generate(t.model, kPrompts, 2, p, 6);
  bool differs = false;
  for (std::size_t i = 0; i < ref.size(); ++i) differs |= other[i].tokens != ref[i].tokens;
  EXPECT_TRUE(differs);
  // A rank that holds prompts 1.. with first_prompt_index 1 draws what the whole run drew for them.
  const auto shifted = generate(t.model, {kPrompts.begin() + 1, kPrompts.end()}, 2, p, 6, 1);
  for (std::size_t i = 0; i < shifted.size(); ++i) EXPECT_EQ(shifted[i].tokens, other[i + 2].tokens);
}

TEST(Generate, StopTokensAndMaxLengthEndSequences) {
  TinyModel t(kVariants[0]);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_new_tokens = 9;
  const auto free_run = generate(t.model, kPrompts, 1, p, 3);
  for (const auto& c : free_run) {
    EXPECT_EQ(c.tokens.size(), 9u);
    EXPECT_EQ(c.finished_by, FinishReason::length);
  }
  // Stop on the 4th greedy token of prompt 0: it ends there (stop id included), the others where that id
  // first appears in theirs, or at the length limit.
  p.stop_ids = {free_run[0].tokens[3]};
  const auto stopped = generate(t.model, kPrompts, 1, p, 3);
  for (std::size_t i = 0; i < stopped.size(); ++i) {
    const auto& full = free_run[i].tokens;
    const auto hit = std::find(full.begin(), full.end(), p.stop_ids[0]);
    const std::vector<std::int32_t> want(full.begin(), hit == full.end() ? full.end() : hit + 1);
    EXPECT_EQ(stopped[i].tokens, want) << "prompt " << i;
    EXPECT_EQ(stopped[i].finished_by, hit == full.end() ? FinishReason::length : FinishReason::stop);
    EXPECT_EQ(stopped[i].logprobs.size(), want.size());
  }
  EXPECT_LE(stopped[0].tokens.size(), 4u);
  // The model's context bounds a completion: 30 prompt tokens + 2 new = max_seq_len 32.
  const std::vector<std::int32_t> long_prompt(30, 3);
  p.stop_ids.clear();
  p.max_new_tokens = 10;
  const auto capped = generate(t.model, {long_prompt}, 1, p, 1);
  EXPECT_EQ(capped[0].tokens.size(), 2u);
  EXPECT_EQ(capped[0].finished_by, FinishReason::length);
  EXPECT_THROW(generate(t.model, {std::vector<std::int32_t>(32, 3)}, 1, p, 1), Error);
  p.top_p = 0.0f;
  EXPECT_THROW(generate(t.model, kPrompts, 1, p, 1), Error);
}

TEST(Generate, LogprobsAreThoseOfTheTrainingForward) {
  for (const Variant& v : kVariants) {
    SCOPED_TRACE(v.name);
    TinyModel t(v);
    for (float temperature : {1.0f, 0.7f}) {
      SamplingParams p;
      p.temperature = temperature;  // top_p 1, top_k 0: the untruncated policy
      p.max_new_tokens = 8;
      p.seed = 99;
      const auto out = generate(t.model, kPrompts, 2, p, 4);
      for (const auto& c : out) {
        std::vector<std::int32_t> seq = kPrompts[static_cast<std::size_t>(c.prompt_index)];
        const std::size_t n = seq.size();
        seq.insert(seq.end(), c.tokens.begin(), c.tokens.end());
        const Full f = full_forward(t.model, seq);
        for (std::size_t k = 0; k < c.tokens.size(); ++k) {
          const std::int64_t row = static_cast<std::int64_t>(n + k) - 1;
          EXPECT_NEAR(c.logprobs[k], log_softmax(f.logits, row, c.tokens[k], temperature), 1e-5);
          if (temperature == 1.0f) {
            EXPECT_NEAR(c.logprobs[k], f.token_logprob[static_cast<std::size_t>(row)], 1e-5);
          }
        }
      }
    }
  }
}

TEST(Generate, PolicyLogprobsAreTheUntemperedTrainingForwardsAndRoutingIsKeptPerFedToken) {
  const TinyModel t(kVariants[0]);
  SamplingParams p;
  p.temperature = 0.7f;  // the draw is tempered; the policy log-prob is the learner's, at temperature 1
  p.max_new_tokens = 6;
  p.seed = 5;
  p.record_experts = true;
  const std::int64_t k = t.c.n_activated_experts, layers = t.model.trunk_moe_layers();
  ASSERT_GT(layers, 0);
  for (const auto& c : generate(t.model, kPrompts, 2, p, 3)) {
    std::vector<std::int32_t> seq = kPrompts[static_cast<std::size_t>(c.prompt_index)];
    const std::size_t n = seq.size();
    seq.insert(seq.end(), c.tokens.begin(), c.tokens.end());
    const Full f = full_forward(t.model, seq);
    ASSERT_EQ(c.policy_logprobs.size(), c.tokens.size());
    for (std::size_t j = 0; j < c.tokens.size(); ++j)
      EXPECT_NEAR(c.policy_logprobs[j], f.token_logprob[n + j - 1], 1e-5) << j;
    EXPECT_EQ(c.experts.size(), (seq.size() - 1) * static_cast<std::size_t>(layers * k));
    for (std::int16_t e : c.experts) EXPECT_TRUE(e >= 0 && e < t.c.n_routed_experts) << e;
  }
}

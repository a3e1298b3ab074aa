// Generation with grouped-query attention under tensor and pipeline parallelism against one rank (tiny-llama,
// tiny-qwen2, tiny-qwen3 presets; CPU, f32; 2 ranks): TP2 (the 2 K/V heads split, and tiny-qwen2 with 1 K/V
// head replicated on both ranks) and PP2 (one layer per stage; the embeddings untied, as pipeline parallelism
// keeps the embedding and the head on different stages). Prefill and decode over the KV cache of this
// rank's heads or layers, slots dropped and reordered, give every rank the one-rank logits -- bit-identical
// under PP (the stages run the one-rank ops and copy activations), within 1e-5 under TP (partial sums over
// ranks move a few ulps) -- and generate() gives the one-rank completions token for token under static and
// continuous batching.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "generate/engine.hpp"
#include "generate/gqa_models.hpp"
#include "generate/logit_checks.hpp"
#include "parallel/comm_bundle.hpp"
#include "support/world.hpp"

using namespace r1;

namespace {
struct Case {
  const char* preset;
  std::int64_t kv_heads;  // 0: the preset's
  int tensor, pipeline;
  std::string name() const {
    return std::string(preset) + (kv_heads > 0 ? " with " + std::to_string(kv_heads) + " K/V head" : "") +
           (tensor > 1 ? " TP" : " PP") + std::to_string(std::max(tensor, pipeline));
  }
};
const Case kCases[] = {{"tiny-llama", 0, 2, 1}, {"tiny-qwen2", 0, 2, 1}, {"tiny-qwen3", 0, 2, 1}, {"tiny-qwen2", 1, 2, 1},
                       {"tiny-llama", 0, 1, 2}, {"tiny-qwen2", 0, 1, 2}, {"tiny-qwen3", 0, 1, 2}};

ModelConfig config(const Case& k) {
  ModelConfig c = test::gqa_preset(k.preset, k.kv_heads);
  if (k.pipeline > 1) c.tie_embeddings = false;
  return c;
}

std::unique_ptr<parallel::CommBundle> bundle_for(const Case& k) {
  const parallel::Mesh mesh({.world = test::world_size(), .tensor = k.tensor, .pipeline = k.pipeline}, test::world_rank());
  return std::make_unique<parallel::CommBundle>(
      parallel::make_comm_bundle(mesh, parallel::Backend::mpi, kernels::Context::cpu(), 120));
}


struct GqaModel {
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  GqaModel(const ModelConfig& c, ModelGroups groups) : model(c, params, groups) { test::init_gqa_weights(params); }
};

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 170, 5}, {9, 1, 220, 300, 4, 4, 11}, {2, 38, 7, 190, 25}};
}  // namespace

TEST(GenerateGqaLayout, PrefillAndDecodeLogitsEqualOneRank) {
  ASSERT_EQ(test::world_size(), 2);
  for (const Case& k : kCases) {
    SCOPED_TRACE(k.name());
    const ModelConfig c = config(k);
    const auto comms = bundle_for(k);
    GqaModel ref(c, {}), t(c, {.tp = comms->tp.get(), .pp = comms->pp.get()});
    const double tol = k.tensor > 1 ? 1e-5 : 0.0;
    KvCache ref_cache = ref.model.make_kv_cache(3, 20), cache = t.model.make_kv_cache(3, 20);
    ASSERT_EQ(static_cast<std::int64_t>(cache.gqa_layers.size()), c.n_layers / k.pipeline) << "this rank's layers";
    EXPECT_EQ(cache.gqa_layers[0].k.dim(2), std::max<std::int64_t>(c.kv_heads() / k.tensor, 1) * c.gqa_head_dim())
        << "this rank's K/V heads";
    test::expect_decode_equals_one_rank(ref.model, ref_cache, t.model, cache, kPrompts, tol);
  }
}

TEST(GenerateGqaLayout, CompletionsEqualOneRank) {
  ASSERT_EQ(test::world_size(), 2);
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_new_tokens = 10;
  sp.stop_ids = {0, 1, 2};
  sp.seed = 13;
  for (const Case& k : kCases) {
    SCOPED_TRACE(k.name());
    const ModelConfig c = config(k);
    const auto comms = bundle_for(k);
    GqaModel ref(c, {}), t(c, {.tp = comms->tp.get(), .pp = comms->pp.get()});
    sp.batching = Batching::static_batch;
    const auto want = generate(ref.model, kPrompts, 2, sp, 3);
    for (const Batching batching : {Batching::static_batch, Batching::continuous}) {
      sp.batching = batching;
      const auto got = generate(t.model, kPrompts, 2, sp, 3);
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].tokens, want[i].tokens) << "completion " << i;
        ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size());
        for (std::size_t j = 0; j < want[i].logprobs.size(); ++j)
          EXPECT_NEAR(got[i].logprobs[j], want[i].logprobs[j], 1e-5) << "completion " << i << " token " << j;
      }
    }
  }
}

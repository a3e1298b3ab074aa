// Generation under pipeline parallelism against one rank (tiny 4-layer MoE, CPU, FP32): prefill and decode
// over the KV cache of this rank's layers, with slots dropped and reordered, give every rank the one-rank
// logits, and generate() gives the one-rank completions, at PP2, PP2 with two chunks per stage and PP2
// on DualPipeV's V (2 ranks), PP4, TP2 x PP2 and PP2 x DP2 with the routed experts over EP2 (4 ranks; the EP ranks generate in
// lockstep with different numbers of prompts, so one of them runs idle passes), under static batching and
// under continuous batching at max_batch 1, 3 and 8 (paged cache; at 8 also the contiguous cache, and a tight
// token budget that preempts sequences; at 3 also prefills in chunks of 2 tokens) against the static
// one-rank completions.
// Tolerance: pipeline stages run the one-rank ops on the one-rank shapes and only copy the activations
// between them, so pure pipeline layouts must give bit-identical logits; tensor parallelism sums partial
// outputs over ranks and expert parallelism regroups the expert GEMMs' rows, which moves logits by a few
// ulps (~1e-7 relative), so those layouts get 1e-5. Sampled tokens must agree exactly on every layout.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "generate/engine.hpp"
#include "generate/logit_checks.hpp"
#include "parallel/comm_bundle.hpp"
#include "support/tiny_model.hpp"
#include "support/world.hpp"

using namespace r1;

namespace {

using test::world_rank;
using test::world_size;

ModelConfig tiny() {
  // 4 layers: 4 chunks of one layer at PP4 or PP2 x 2 virtual stages.
  ModelConfig c =
      test::tiny_model({.vocab_size = 48, .n_layers = 4, .v_head_dim = 6, .max_seq_len = 32, .init_std = 0.3});
  c.mtp_depth = 0;  // pipeline parallelism keeps the embedding and the head apart
  return c;
}

struct Layout {
  int tensor = 1, pipeline = 1, virtual_stages = 1, expert = 1;
  bool v_shape = false;  // DualPipeV's placement: 2 chunks per stage on a V
  std::string name() const {
    return (tensor > 1 ? "TP" + std::to_string(tensor) + " x " : "") + "PP" + std::to_string(pipeline) +
           (virtual_stages > 1 ? " (" + std::to_string(virtual_stages) + " chunks per stage" + (v_shape ? " on a V)" : ")") : "") +
           (expert > 1 ? " x EP" + std::to_string(expert) : "");
  }
  bool exact() const { return tensor == 1 && expert == 1; }
};

std::vector<Layout> layouts() {
  if (world_size() == 2)
    return {{.pipeline = 2}, {.pipeline = 2, .virtual_stages = 2}, {.pipeline = 2, .virtual_stages = 2, .v_shape = true}};
  return {{.pipeline = 4}, {.tensor = 2, .pipeline = 2}, {.pipeline = 2, .expert = 2}};
}

std::unique_ptr<parallel::CommBundle> bundle_for(const Layout& l) {
  const parallel::Mesh mesh({.world = world_size(), .tensor = l.tensor, .pipeline = l.pipeline, .expert = l.expert},
                            world_rank());
  return std::make_unique<parallel::CommBundle>(
      parallel::make_comm_bundle(mesh, parallel::Backend::mpi, kernels::Context::cpu(), 120));
}

struct TinyModel {
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  explicit TinyModel(ModelGroups groups = {}) : model(tiny(), params, groups) { params.initialize(7, tiny().init_std); }
  TinyModel(const parallel::CommBundle& c, const Layout& l)
      : TinyModel(ModelGroups{.tp = c.tp.get(), .ep = c.ep.get(), .pp = c.pp.get(), .virtual_stages = l.virtual_stages,
                              .placement = l.v_shape ? parallel::ChunkPlacement::v_shape : parallel::ChunkPlacement::round_robin}) {}
};

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 17, 5}, {9, 1, 22, 30, 4, 4, 11}, {2, 38, 7, 19, 25}};

}  // namespace

TEST(GeneratePipeline, PrefillAndDecodeLogitsEqualOneRank) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(l.name());
    const auto comms = bundle_for(l);
    TinyModel ref, t(*comms, l);
    const double tol = l.exact() ? 0.0 : 1e-5;
    KvCache ref_cache = ref.model.make_kv_cache(3, 20), cache = t.model.make_kv_cache(3, 20);
    EXPECT_EQ(static_cast<int>(cache.layers.size()), tiny().n_layers / l.pipeline) << "the cache holds this rank's layers";
    test::expect_decode_equals_one_rank(ref.model, ref_cache, t.model, cache, kPrompts, tol);
  }
}

TEST(GeneratePipeline, CompletionsEqualOneRank) {
  // Five prompts shared out by data-parallel rank: 3 and 2, so under EP2 one rank runs out first and keeps
  // the group's passes matched with idle ones.
  const std::vector<std::vector<std::int32_t>> prompts{{3, 17, 5}, {9, 1, 22, 30, 4}, {2, 38, 7}, {40, 41}, {5, 6, 7, 8, 9, 10}};
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_new_tokens = 10;
  sp.stop_ids = {0, 1, 2};
  sp.seed = 13;
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(l.name());
    const auto comms = bundle_for(l);
    TinyModel ref, t(*comms, l);
    const int dp = comms->dp->rank(), n_dp = comms->dp->size();
    const std::size_t first = dp == 0 ? 0 : 3, last = n_dp == 1 || dp == 1 ? prompts.size() : 3;
    const std::vector<std::vector<std::int32_t>> mine(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                                      prompts.begin() + static_cast<std::ptrdiff_t>(last));
    sp.batching = Batching::static_batch;
    const auto want = generate(ref.model, mine, 2, sp, /*max_batch=*/3, static_cast<std::int64_t>(first));
    std::size_t tokens = 0;
    for (const auto& c : want) tokens += c.tokens.size();
    EXPECT_GT(tokens, want.size()) << "the completions should run past their first token";
    // The static engine on the layout, and the continuous one (refilled slots, shared prefills; under EP the
    // ranks' ticks differ in number and kind) at several batch sizes, against the static one-rank run.
    // Continuous prefills pad differently from static ones, so its log-probs get 1e-5 on every layout.
    // The continuous engine runs the paged cache (blocks of 16) by default; also the contiguous cache, and a
    // paged one of blocks of 3 within 16 tokens, where decode steps preempt and re-prefill sequences, and
    // prefills in chunks of 2 tokens in the passes of decode steps.
    struct Run {
      Batching batching;
      std::int64_t max_batch, block_size, budget, chunk = 0;
    };
    for (const Run& r : {Run{Batching::static_batch, 3, 16, 0}, Run{Batching::continuous, 1, 16, 0},
                         Run{Batching::continuous, 3, 16, 0}, Run{Batching::continuous, 8, 16, 0},
                         Run{Batching::continuous, 8, 0, 0}, Run{Batching::continuous, 8, 3, 16},
                         Run{Batching::continuous, 3, 16, 0, 2}}) {
      const Batching batching = r.batching;
      SCOPED_TRACE((batching == Batching::static_batch ? "static, max_batch " : "continuous, max_batch ") +
                   std::to_string(r.max_batch) + ", block size " + std::to_string(r.block_size) + ", budget " +
                   std::to_string(r.budget) + ", prefill chunk " + std::to_string(r.chunk));
      sp.batching = batching;
      sp.kv_block_size = r.block_size;
      sp.kv_cache_tokens = r.budget;
      sp.prefill_chunk = r.chunk;
      GenerateStats st;
      const auto got = generate(t.model, mine, 2, sp, r.max_batch, static_cast<std::int64_t>(first), &st);
      if (r.budget > 0) {
        EXPECT_GT(st.preemptions, 0) << "a budget of " << r.budget << " tokens";
      }
      if (r.chunk > 0) {  // paged: chunks share passes with decode steps on some rank of the layout
        long long mixed = st.mixed_steps, anywhere = 0;
        MPI_Allreduce(&mixed, &anywhere, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
        EXPECT_GT(anywhere, 0) << "no chunk ran in a decode step's pass";
      }
      const double tol = l.exact() && batching == Batching::static_batch ? 0.0 : 1e-5;
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].tokens, want[i].tokens) << "completion " << i;
        EXPECT_EQ(got[i].finished_by, want[i].finished_by) << "completion " << i;
        ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size());
        for (std::size_t k = 0; k < want[i].logprobs.size(); ++k)
          EXPECT_NEAR(got[i].logprobs[k], want[i].logprobs[k], tol) << "completion " << i << " token " << k;
      }
    }
  }
}

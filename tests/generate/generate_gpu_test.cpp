// The generation engine on the GPU (bf16, a tiny MoE whose decode batches of up to 4 sequences take the
// device-side MoE path): decode logits equal the training forward over the same prefix (whose MoE runs the
// permuted grouped-GEMM path), and decode steps run as CUDA graphs give the completions of steps launched
// kernel by kernel, through batches that shrink as sequences stop and, under continuous batching, through
// slots refilled under a graph that is kept. Labelled `gpu`: fails without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "generate/engine.hpp"
#include "generate/logit_checks.hpp"
#include "kernels/test_util.hpp"
#include "support/tiny_model.hpp"

using namespace r1;

namespace {
ModelConfig tiny_moe() {
  return test::tiny_model({.vocab_size = 64, .dim = 64, .n_layers = 3, .n_heads = 4, .dense_inter_dim = 96,
                           .moe_inter_dim = 32, .n_routed_experts = 8, .n_expert_groups = 1, .n_limited_groups = 1,
                           .kv_lora_rank = 32, .qk_nope_head_dim = 16, .qk_rope_head_dim = 8, .v_head_dim = 16,
                           .max_seq_len = 64, .init_std = 0.05});
}

struct GpuModel {
  ModelConfig c = tiny_moe();
  ParamStore params{test::gpu_context(), DType::bf16};
  Model model{c, params};
  GpuModel() { params.initialize(11, c.init_std); }
};

using test::rel_error;
}  // namespace

TEST(GenerateGpu, DeviceSideDecodeEqualsTheTrainingForward) {
  GpuModel g;
  ASSERT_TRUE(g.model.decodes_on_device(2));
  ASSERT_FALSE(g.model.decodes_on_device(5));  // 5 x 2 pairs > 8 experts: the permuted path
  std::vector<std::vector<std::int32_t>> seqs{{3, 17, 5, 40, 2, 9}, {9, 1, 22, 30, 4, 4, 11, 60}};
  KvCache cache = g.model.make_kv_cache(2, 24);
  g.model.prefill(cache, seqs);
  for (int step = 0; step < 6; ++step) {
    std::vector<std::int32_t> next{static_cast<std::int32_t>((7 * step + 3) % 64), static_cast<std::int32_t>((11 * step + 5) % 64)};
    for (std::size_t i = 0; i < 2; ++i) seqs[i].push_back(next[i]);
    const Tensor logits = test::to_host(g.model.decode(cache, next));
    for (std::size_t i = 0; i < 2; ++i) {
      TokenBatch tb;
      tb.seq = static_cast<std::int64_t>(seqs[i].size());
      tb.ids = seqs[i];
      tb.targets.assign(seqs[i].size(), -1);
      ForwardResult r;
      const auto saved = g.model.forward(g.model.upload(tb), r);
      const Tensor full = test::to_host(Model::logits(*saved));
      Tensor full32 = Tensor::host(full.shape(), DType::f32);
      for (std::int64_t j = 0; j < full.numel(); ++j) full32.data<float>()[j] = static_cast<float>(test::value(full, j));
      // bf16: the two paths round their intermediates at different points (grouped vs per-pair GEMMs).
      EXPECT_LE(rel_error(logits, static_cast<std::int64_t>(i), full32, tb.seq - 1), 0.03) << "step " << step << " slot " << i;
    }
  }
}

TEST(GenerateGpu, CudaGraphStepsGiveTheSameCompletions) {
  GpuModel g;
  const std::vector<std::vector<std::int32_t>> prompts{{3, 17, 5}, {9, 1, 22, 30, 4}, {2, 38, 7, 19}, {8}};
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_new_tokens = 40;
  sp.seed = 5;
  sp.stop_ids = {1, 2, 3};  // sequences stop at different steps, so the batch shrinks and graphs are recaptured
  ASSERT_TRUE(g.model.decodes_on_device(4));
  const std::vector<Completion> graphs = generate(g.model, prompts, 1, sp, 4);
  sp.cuda_graphs = false;
  const std::vector<Completion> eager = generate(g.model, prompts, 1, sp, 4);
  ASSERT_EQ(graphs.size(), eager.size());
  std::size_t lengths = 0, stopped = 0;
  for (std::size_t i = 0; i < graphs.size(); ++i) {
    EXPECT_EQ(graphs[i].tokens, eager[i].tokens) << "completion " << i;
    EXPECT_EQ(graphs[i].logprobs, eager[i].logprobs) << "completion " << i;
    EXPECT_EQ(graphs[i].entropies, eager[i].entropies) << "completion " << i;
    lengths += graphs[i].tokens.size();
    stopped += graphs[i].finished_by == FinishReason::stop;
  }
  EXPECT_GT(lengths, 4u * 5);  // decode steps did run
  EXPECT_GE(stopped, 1u);      // and the batch shrank
}

TEST(GenerateGpu, RefilledSlotsKeepTheirCudaGraph) {
  GpuModel g;
  const std::vector<std::vector<std::int32_t>> prompts{{3, 17, 5}, {9, 1, 22, 30, 4}, {2, 38, 7, 19}, {8}, {40, 41, 42}};
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_new_tokens = 30;
  sp.seed = 9;
  sp.stop_ids = {1, 2, 3};
  sp.batching = Batching::continuous;
  ASSERT_TRUE(g.model.decodes_on_device(4));
  GenerateStats graphed, eager;
  const std::vector<Completion> with_graphs = generate(g.model, prompts, 2, sp, 4, 0, &graphed);
  sp.cuda_graphs = false;
  const std::vector<Completion> without = generate(g.model, prompts, 2, sp, 4, 0, &eager);
  ASSERT_EQ(with_graphs.size(), without.size());
  for (std::size_t i = 0; i < without.size(); ++i) {
    EXPECT_EQ(with_graphs[i].tokens, without[i].tokens) << "completion " << i;
    EXPECT_EQ(with_graphs[i].logprobs, without[i].logprobs) << "completion " << i;
  }
  EXPECT_GT(graphed.prefills, 2) << "slots should have been refilled";
  EXPECT_EQ(eager.graph_captures, 0);
  // A graph is captured for the first decode step and again only when the tail's slots are dropped (at most
  // one capture per batch size below 4 after the queue empties), not at every refill.
  EXPECT_GE(graphed.graph_captures, 1);
  EXPECT_LE(graphed.graph_captures, 4);
  EXPECT_GT(graphed.decode_steps, graphed.graph_captures + graphed.prefills);
}

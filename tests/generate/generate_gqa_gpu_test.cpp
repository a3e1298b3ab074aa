// Generation with grouped-query attention on the GPU (tiny-llama, tiny-qwen2, tiny-qwen3 presets, bf16): decode
// over the GQA KV cache (kernels/gqa_decode's CUDA kernel) gives the training forward's logits over the same
// prefix, and decode steps run as CUDA graphs give the completions of steps launched kernel by kernel, through
// batches that shrink as sequences stop and slots refilled under continuous batching. Labelled `gpu`: fails
// without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "generate/engine.hpp"
#include "generate/gqa_models.hpp"
#include "generate/logit_checks.hpp"

using namespace r1;

namespace {
struct GpuModel {
  ModelConfig c;
  ParamStore params{test::gpu_context(), DType::bf16};
  Model model;
  explicit GpuModel(const char* preset) : c(test::gqa_preset(preset)), model(c, params) { test::init_gqa_weights(params); }
};

}  // namespace

TEST(GenerateGqaGpu, DecodeEqualsTheTrainingForward) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GpuModel g(preset);
    ASSERT_TRUE(g.model.decodes_on_device(3));
    const std::vector<std::vector<std::int32_t>> prompts{{3, 170, 5}, {9, 1, 220, 300, 4, 4, 11}, {2, 38, 7, 190, 25}};
    const std::vector<std::vector<std::int32_t>> cont{{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1}, {0, 390, 20, 11, 13, 35, 6, 6}};
    // bf16: the decode and the training forward round their intermediates at different points.
    test::expect_decode_equals_full_forward(g.model, prompts, cont,
                                            [&](const std::vector<std::int32_t>& seq) { return test::full_forward_logits(g.model, seq); },
                                            0.03);
  }
}

TEST(GenerateGqaGpu, CudaGraphStepsGiveTheSameCompletions) {
  const std::vector<std::vector<std::int32_t>> prompts{{3, 17, 5}, {9, 1, 22, 30, 4}, {2, 38, 7, 19}, {8}, {40, 41, 42}};
  for (const char* preset : test::kGqaPresets) {
    for (const Batching batching : {Batching::static_batch, Batching::continuous}) {
      SCOPED_TRACE(std::string(preset) + (batching == Batching::continuous ? " continuous" : " static"));
      GpuModel g(preset);
      SamplingParams sp;
      sp.temperature = 1.0f;
      sp.max_new_tokens = 40;
      sp.seed = 5;
      sp.stop_ids = {1, 2, 3};  // sequences stop at different steps: the batch shrinks, slots are refilled
      sp.batching = batching;
      GenerateStats graphed;
      const std::vector<Completion> graphs = generate(g.model, prompts, 2, sp, 4, 0, &graphed);
      sp.cuda_graphs = false;
      const std::vector<Completion> eager = generate(g.model, prompts, 2, sp, 4);
      ASSERT_EQ(graphs.size(), eager.size());
      std::size_t lengths = 0;
      for (std::size_t i = 0; i < graphs.size(); ++i) {
        EXPECT_EQ(graphs[i].tokens, eager[i].tokens) << "completion " << i;
        EXPECT_EQ(graphs[i].logprobs, eager[i].logprobs) << "completion " << i;
        lengths += graphs[i].tokens.size();
      }
      EXPECT_GT(lengths, graphs.size() * 4) << "decode steps should have run";
      EXPECT_GE(graphed.graph_captures, 1);
    }
  }
}
